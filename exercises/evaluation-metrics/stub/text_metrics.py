"""Your metrics as a Hugging Face `evaluate` module, loaded offline with evaluate.load("<path>/text_metrics.py").

evaluate reads this file's imports with a regular expression to check they are installed: write ONE
import per line (``import a, b`` on one line makes evaluate raise a spurious ImportError). The folder of
solution.py is on sys.path when the grader runs, so ``import solution`` reaches your functions.

``_compute(predictions, references, use_stemmer=False)`` receives every batch added, at once, and returns
{"bleu": corpus BLEU (13a, exp smoothing) of all predictions, "rouge1", "rouge2", "rougeL", "rougeLsum": the
MEAN over predictions of the F-measure, each prediction scored against its BEST reference (the highest
F-measure of that type, as rouge_score's score_multi does); 0.0 for no predictions}.
"""

import datasets
import evaluate
import solution  # noqa: F401 (your functions)


class TextMetrics(evaluate.Metric):
    """Corpus BLEU and mean ROUGE F-measures."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Corpus BLEU and mean ROUGE F-measures, written from scratch.",
            citation="Papineni et al. 2002 (BLEU); Lin 2004 (ROUGE); Post 2018 (sacreBLEU).",
            inputs_description="predictions: list of str; references: list of lists of str.",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}),
        )

    def _compute(self, predictions, references, use_stemmer=False):
        raise NotImplementedError
