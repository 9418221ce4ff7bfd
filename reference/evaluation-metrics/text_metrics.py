"""Corpus BLEU and mean ROUGE F-measures as a Hugging Face `evaluate` metric (reference).

Loaded with evaluate.load("<path>/text_metrics.py"); one import per line, as evaluate parses them.
"""

import datasets
import evaluate
import solution


class TextMetrics(evaluate.Metric):
    """BLEU (sacrebleu's 13a corpus BLEU) and ROUGE-1/2/L/Lsum (mean F-measure, best reference)."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Corpus BLEU and mean ROUGE F-measures, written from scratch.",
            citation="Papineni et al. 2002 (BLEU); Lin 2004 (ROUGE); Post 2018 (sacreBLEU).",
            inputs_description="predictions: list of str; references: list of lists of str.",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
        )

    def _compute(self, predictions, references, use_stemmer=False):
        scores = {"bleu": solution.corpus_bleu(list(predictions), [list(r) for r in references])}
        kinds = ("rouge1", "rouge2", "rougeL", "rougeLsum")
        totals = dict.fromkeys(kinds, 0.0)
        for prediction, refs in zip(predictions, references, strict=True):
            per_ref = [solution.rouge(ref, prediction, kinds, use_stemmer) for ref in refs]
            for kind in kinds:
                totals[kind] += max(r[kind]["fmeasure"] for r in per_ref)
        for kind in kinds:
            scores[kind] = totals[kind] / len(predictions) if predictions else 0.0
        return scores
