"""Evaluation metrics for text generation from scratch: BLEU, ROUGE and perplexity, and an `evaluate` module.

A metric is a contract: two papers that report "BLEU 27.3" must have computed the same thing. Tiny
differences (which tokenizer, which reference length, how zero counts are smoothed, whether a corpus
score averages sentences) move scores by whole points. This exercise rebuilds the three standard metrics
exactly as the reference implementations compute them, so that your numbers equal theirs to 1e-9:

* BLEU (Papineni et al. 2002, https://aclanthology.org/P02-1040/) as sacreBLEU computes it (Post 2018,
  "A Call for Clarity in Reporting BLEU Scores", https://aclanthology.org/W18-6319/; smoothing methods
  from Chen & Cherry 2014, https://aclanthology.org/W14-3346/). Corpus BLEU is computed from the
  statistics SUMMED over all segments, never as the average of sentence scores.
* ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum (Lin 2004, https://aclanthology.org/W04-1013/) as Google's
  ``rouge-score`` package computes them.
* Perplexity: exp of the mean negative log-likelihood per predicted token
  (https://huggingface.co/docs/transformers/perplexity), padding excluded.
* ``text_metrics.py`` (next to this file): the metrics as a Hugging Face ``evaluate`` module, loaded
  offline with ``evaluate.load("<folder>/text_metrics.py")`` (https://huggingface.co/docs/evaluate).

WRITE THEM YOURSELF. Do not import ``sacrebleu``, ``rouge_score``, ``torchmetrics`` or ``nltk.translate``
(nor ``evaluate.load("bleu")``, which needs the hub anyway): the checks compare you with those
libraries, and they also grade the intermediate statistics (n-gram counts, clipped matches, LCS tables)
that a wrapper does not produce. A solution.py that imports those libraries at module level is refused by
the score checks. Allowed: the standard library, ``regex`` (for the ``\\p{P}`` classes of the intl
tokenizer), ``torch``, and ``nltk.stem.porter.PorterStemmer`` for ROUGE's stemming only.

Data crosses the sandbox boundary as plain Python values (str, int, float, lists, dicts with tuple keys)
and tensors. References are given PER HYPOTHESIS: ``references[i]`` is the list of references of
``hypotheses[i]`` (its length may differ from segment to segment). sacreBLEU's own API takes the
transpose ("reference streams"); do not confuse the two.
"""

from __future__ import annotations

from typing import Any

import torch

TOKENIZERS = ("13a", "none", "intl", "char")


# -- BLEU -----------------------------------------------------------------------------------------------
def tokenize_13a(line: str) -> str:
    """sacreBLEU's default "13a" tokenizer (mteval-v13a.pl): returns the tokens joined by single spaces.

    1. Remove "<skipped>", remove "-\\n" (hyphenated line breaks), replace "\\n" by a space; replace the
       entities "&quot;", "&amp;", "&lt;", "&gt;" by '"', "&", "<", ">".
    2. Surround the line with one space on each side, then apply these regular expressions in order:
       ``([\\{-\\~\\[-\\` -\\&\\(-\\+\\:-\\@\\/])`` -> `` \\1 `` (punctuation and symbols become tokens);
       ``([^0-9])([\\.,])`` -> ``\\1 \\2 ``; ``([\\.,])([^0-9])`` -> `` \\1 \\2`` (a period or comma splits off
       unless it sits between digits: "3.14" and "1,000" stay whole); ``([0-9])(-)`` -> ``\\1 \\2 ``.
    3. Collapse whitespace: ``" ".join(line.split())``.
    """
    raise NotImplementedError


def bleu_tokenize(line: str, method: str = "13a", lowercase: bool = False) -> list[str]:
    """The tokens BLEU counts, as sacreBLEU preprocesses a segment.

    Lower-case first when ``lowercase``; then strip trailing whitespace (``line.rstrip()``); then tokenize:
    "13a" as above; "none" leaves the line as it is; "intl" applies the mteval-v14 international rules,
    ``(\\P{N})(\\p{P})`` -> ``\\1 \\2 ``, then ``(\\p{P})(\\P{N})`` -> `` \\1 \\2``, then ``(\\p{S})`` -> `` \\1 ``
    (Unicode punctuation P and symbols S, numbers N: use the ``regex`` module); "char" puts a space
    between all characters (``" ".join(line)``). Finally split on whitespace (``.split()``).

    Raises:
        ValueError: an unknown ``method`` (not one of TOKENIZERS).
    """
    raise NotImplementedError


def ngram_counts(tokens: list[Any], max_order: int) -> dict[tuple[Any, ...], int]:
    """Every n-gram of ``tokens`` for n = 1..max_order, as a tuple, with how often it occurs.

    ``ngram_counts(["a", "b", "a"], 2) == {("a",): 2, ("b",): 1, ("a", "b"): 1, ("b", "a"): 1}``.
    """
    raise NotImplementedError


def bleu_statistics(hypothesis: str, references: list[str], max_order: int = 4, tokenize: str = "13a",
                    lowercase: bool = False) -> dict[str, Any]:
    """BLEU's sufficient statistics for one segment.

    Returns ``{"matches": [...], "totals": [...], "hyp_len": int, "ref_len": int}`` (lists of max_order ints):
    * ``totals[n-1]``: the number of n-grams of the hypothesis, ``max(0, hyp_len - n + 1)``;
    * ``matches[n-1]``: CLIPPED matches: each hypothesis n-gram counts at most as often as it occurs in
      the reference where it occurs MOST (max over references, never the sum of them);
    * ``hyp_len``: the number of hypothesis tokens;
    * ``ref_len``: the length of the reference CLOSEST to hyp_len; on a tie, the SHORTER one (sacreBLEU;
      tensorflow/nmt and NLTK use other rules, the checks follow sacreBLEU).

    Raises:
        ValueError: no references.
    """
    raise NotImplementedError


def bleu_from_statistics(matches: list[int], totals: list[int], hyp_len: int, ref_len: int,
                         smooth_method: str = "none", smooth_value: float | None = None,
                         effective_order: bool = False) -> float:
    """BLEU (0-100) from statistics: brevity penalty times the geometric mean of the n-gram precisions.

    N = len(matches). Brevity penalty: 1 if hyp_len >= ref_len, else exp(1 - ref_len / hyp_len), and 0 when
    hyp_len == 0. If no n-gram of any order matches (all matches are 0), BLEU is 0 whatever the smoothing.
    Otherwise, for n = 1..N in order:
    * "add-k" (default k = 1): for n > 1, add k to matches[n-1] AND totals[n-1] (never to unigrams);
    * if totals[n-1] == 0: stop; the orders from n on keep precision 0;
    * with ``effective_order``, the orders used are 1..n, the last one with totals > 0 (sentence BLEU:
      a 3-word hypothesis has no 4-grams, which should not zero the score);
    * precision p_n = 100 * matches / totals when matches > 0; when matches == 0: "exp" (NIST, mteval)
      doubles a divisor that starts at 1, for each such order, and uses 100 / (divisor * totals); "floor"
      (default 0.1) uses 100 * smooth_value / totals; "none" leaves 0.
    BLEU = BP * exp(mean of log p_n over the orders used): N orders, or the effective ones. A precision
    of 0 among them makes BLEU 0. The defaults of smooth_value are {"floor": 0.1, "add-k": 1}.

    Raises:
        ValueError: an unknown ``smooth_method`` (not "none", "floor", "add-k", "exp").
    """
    raise NotImplementedError


def corpus_statistics(hypotheses: list[str], references: list[list[str]], max_order: int = 4,
                      tokenize: str = "13a", lowercase: bool = False) -> dict[str, Any]:
    """The statistics of all segments SUMMED (element-wise for matches and totals): the corpus' statistics.

    Raises:
        ValueError: len(hypotheses) != len(references) (one list of references per hypothesis), or a
            segment without references.
    """
    raise NotImplementedError


def corpus_bleu(hypotheses: list[str], references: list[list[str]], smooth_method: str = "exp",
                smooth_value: float | None = None, tokenize: str = "13a", lowercase: bool = False,
                max_order: int = 4) -> float:
    """Corpus BLEU (0-100): bleu_from_statistics of corpus_statistics (no effective order).

    Equal to ``sacrebleu.corpus_bleu(hypotheses, transposed references, ...)``. NOT the mean of sentence BLEUs.
    """
    raise NotImplementedError


def sentence_bleu(hypothesis: str, references: list[str], smooth_method: str = "exp",
                  smooth_value: float | None = None, tokenize: str = "13a", lowercase: bool = False,
                  effective_order: bool = True, max_order: int = 4) -> float:
    """Sentence BLEU (0-100) of one hypothesis, by default with effective order (sacrebleu.sentence_bleu)."""
    raise NotImplementedError


# -- ROUGE ----------------------------------------------------------------------------------------------
# Arguments are (target, prediction), in that order, as rouge_score.RougeScorer.score(target, prediction).
# Every score is {"precision": float, "recall": float, "fmeasure": float}: precision divides the overlap by
# the PREDICTION's count, recall by the TARGET's; F = 2PR / (P + R), and 0.0 when P + R == 0 (also when a
# text has no tokens).

def rouge_tokenize(text: str, use_stemmer: bool = False) -> list[str]:
    """rouge-score's tokenizer: lower-case; every run of characters outside [a-z0-9] becomes a space; split.

    So punctuation disappears and any non-ASCII letter splits words ("café" -> ["caf"]; Chinese text has no
    tokens at all). With ``use_stemmer``, tokens LONGER than 3 characters go through
    ``nltk.stem.porter.PorterStemmer().stem`` (the default NLTK_EXTENSIONS mode); shorter ones stay. Keep
    only tokens that are still non-empty runs of [a-z0-9].
    """
    raise NotImplementedError


def rouge_n(target: str, prediction: str, n: int, use_stemmer: bool = False) -> dict[str, float]:
    """ROUGE-N: overlap = sum over target n-grams of min(count in target, count in prediction).

    Raises:
        ValueError: n < 1.
    """
    raise NotImplementedError


def lcs_table(a: list[Any], b: list[Any]) -> list[list[int]]:
    """The (len(a)+1) x (len(b)+1) dynamic-programming table: ``table[i][j]`` = LCS length of a[:i], b[:j]."""
    raise NotImplementedError


def lcs_indices(ref: list[Any], cand: list[Any]) -> list[int]:
    """The indices into ``ref`` of ONE longest common subsequence, ascending, read back from lcs_table.

    Several LCS may exist; the one asked for is rouge-score's: start at (len(ref), len(cand)); when the
    tokens are equal take the diagonal (record i-1); else move left (j-1) if table[i][j-1] > table[i-1][j],
    otherwise up (i-1). ``lcs_indices([1, 2, 3, 4, 5], [2, 5, 3, 4]) == [1, 2, 3]``.
    """
    raise NotImplementedError


def rouge_l(target: str, prediction: str, use_stemmer: bool = False) -> dict[str, float]:
    """ROUGE-L: the LCS of the token lists; P = lcs / len(prediction), R = lcs / len(target)."""
    raise NotImplementedError


def rouge_lsum(target: str, prediction: str, use_stemmer: bool = False) -> dict[str, float]:
    """ROUGE-Lsum (summary level): sentences are the non-empty lines (split on "\\n").

    For each target sentence r, take the UNION of the indices lcs_indices(r, c) over all prediction
    sentences c (sorted), and count those tokens of r as hits, but never more often than a token occurs
    in either text: keep a Counter of the target's and of the prediction's remaining tokens, and count a
    token only while both are > 0 (decrementing both). P = hits / prediction tokens, R = hits / target
    tokens. rouge-score's vector: target "w1 w2 w3 w4 w5", prediction "w1 w2 w6 w7 w8\\nw1 w3 w8 w9 w5"
    gives P 0.4, R 0.8.
    """
    raise NotImplementedError


def rouge(target: str, prediction: str, rouge_types: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum"),
          use_stemmer: bool = False) -> dict[str, dict[str, float]]:
    """The scores of each type: "rouge1".."rouge9" (ROUGE-N), "rougeL", "rougeLsum".

    Raises:
        ValueError: an unknown type.
    """
    raise NotImplementedError


# -- perplexity -----------------------------------------------------------------------------------------
def perplexity(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100, shifted: bool = False) -> float:
    """Corpus perplexity: exp(total NLL / number of counted tokens), over every counted token of the batch.

    Args:
        logits: (batch, seq, vocab), any float dtype (float16 and bfloat16 too): compute the log-softmax
            in float32 or float64 (``torch.log_softmax``: never ``log(softmax(x))``, which gives -inf for
            very unlikely tokens).
        labels: (batch, seq) int64 token ids; positions equal to ``ignore_index`` are not counted (padding,
            prompts).
        shifted: False (the Hugging Face convention): labels are the input ids, and logits[:, t] predicts
            labels[:, t + 1]: drop the last logit and the first label. True: labels are already aligned,
            logits[:, t] predicts labels[:, t].

    The NLL of a token is -log_softmax(logits)[label]; this equals
    ``exp(F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=ignore_index))`` on the
    aligned tensors. It is NOT the mean of per-sequence perplexities (HF evaluate's "mean_perplexity").

    Returns:
        A Python float.

    Raises:
        ValueError: logits not 3-D or labels not (batch, seq); no counted token at all.
    """
    raise NotImplementedError


def perplexity_per_sequence(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
                            shifted: bool = False) -> list[float]:
    """Each row's perplexity (the same rules, per row); ``float("nan")`` for a row with no counted token."""
    raise NotImplementedError


# -- the evaluate module --------------------------------------------------------------------------------
def metric_path() -> str:
    """The absolute path of text_metrics.py, next to this file (``os.path.dirname(os.path.abspath(__file__))``)."""
    raise NotImplementedError


def evaluate_scores(predictions: list[str], references: list[list[str]], batch_size: int | None = None,
                    use_stemmer: bool = False) -> dict[str, float]:
    """Score through YOUR evaluate module: ``evaluate.load(metric_path())``, then ``add_batch`` per batch.

    Feed the data in consecutive batches of ``batch_size`` (all at once when None) with
    ``metric.add_batch(predictions=..., references=...)``, then return
    ``metric.compute(use_stemmer=use_stemmer)`` as a dict of Python floats. ``evaluate`` collects every batch
    and calls your module's ``_compute`` ONCE with all of them, which is why corpus BLEU must come from
    summed statistics. Import ``evaluate`` inside this function: it takes seconds to import.
    """
    raise NotImplementedError
