"""Prompt engineering: zero-shot, few-shot and instruction prompts for a small instruct model.

The model is SmolLM2-135M-Instruct (a Llama; https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct), a
CHAT model: it was fine-tuned on conversations rendered with its chat template, so prompts must be rendered
with that same template (``tokenizer.apply_chat_template``). The task is the sentiment of a movie review:
"positive" or "negative". Three ways to prompt (Brown et al. 2020, https://arxiv.org/abs/2005.14165, for
zero- and few-shot prompting; the formats below are this exercise's, exactly):

ZERO-SHOT: a system message and one user message.
    [{"role": "system", "content": SYSTEM},
     {"role": "user", "content": "Review: <text>\\nIs the sentiment of this review positive or negative? "
                                 "Answer with one word."}]                              (that is user_turn(text))

FEW-SHOT: the system message, then each example as a user turn (user_turn(example text)) followed by an
assistant turn whose content is the example's label ("positive" or "negative"), in the order given, then the
user turn of the text to classify. An example whose text IS the text being classified is skipped (it would
give the answer away; lm-evaluation-harness excludes the evaluated document from its own shots).

INSTRUCTION: the task stated first, then the input (the order instruction-tuned models were trained on):
    [{"role": "system", "content": SYSTEM},
     {"role": "user", "content": INSTRUCTIONS + "\n\nReview: <text>"}]

RENDERING. ``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)`` gives the
prompt text; it ends with the assistant's header ("<|im_start|>assistant\\n" for this model) so the model
answers as the assistant. Encode rendered text with ``tokenizer(text, add_special_tokens=False)``: the
template already holds every special token. The checks compare your token ids with the reference's exactly.

THE PROMPT/ANSWER BOUNDARY (lm-evaluation-harness, ``tests/models/test_encode_pair.py``): to score a
continuation after a context, tokenise context + continuation JOINED and cut it after the context's own
tokens; trailing SPACES (U+0020) of the context first move to the start of the continuation, because BPE
tokens carry their leading space ("Answer: " + "C" is encoded as "Answer:" + " C"). A trailing newline
stays in the context. If the joined encoding does not start with the context's tokens (the context's last
token merges with the continuation: "hel" + "lo" -> "hello"), or the continuation gets no tokens, raise
ValueError. Tokenising the two halves separately gives wrong ids at the join.

LABEL SCORING by log-likelihood (instead of free generation): the score of a label is the sum, over its
continuation tokens after the rendered prompt, of log p(token | everything before it); a causal LM's
logits at position t predict the token at t + 1. The predicted label is the one with the higher score.
Labels are continued directly after the generation prompt, without a leading space ("positive").
``score(texts, style, shots)`` gives these scores for every text, one per label of LABELS in that order;
``classify`` takes the likeliest. Both raise ValueError for an unknown style, even for no texts.

SPEED on a CPU (graded under the check time limits). The prompt is the same for both labels: run it once
and read the first label token's log-probabilities from its last position (only a label of several tokens
needs more). Prompts of the same style share a long token prefix (the system turn, the few-shot examples):
a KV cache of that prefix (``transformers.DynamicCache``, passed to the model and copied with
``copy.deepcopy`` for each prompt) saves most of the work. Scoring every prompt + label from scratch is
correct too, only several times slower.

FREE GENERATION is sampled: ``model.generate(..., do_sample=True, temperature=0.7, top_p=0.9,
max_new_tokens=max_new_tokens, max_time=max_time_s)``, seeded with ``torch.manual_seed(seed)`` right before
the call, so the same seed always gives the same text; ``max_time`` bounds the time a call may take. Return
only the new text (decode the new tokens, skip special tokens). PARSING the answer: the model writes
"Positive.", "**Negative**", "The sentiment of this review is positive." and more; ``parse_label`` returns
the first whole word "positive" or "negative" in any case, lower-cased, and None when there is none.

WHAT THE CHECKS MEASURE. Messages and token ids exactly; encode_pair exactly; label log-likelihoods and
scores within 2e-3; the parser on listed outputs and on answers the model really wrote; seeding and the
time bound. On a hidden probe set of 40 reviews (20 positive, 20 negative), the cpu profile asks for
zero-shot and instruction accuracy of at least 75% (the majority label gives 50%; the reference: 90% and
100%). Few-shot prompts (2 examples per label drawn from ``checks/data/shots.tsv`` with the grading seed,
labels alternating) are held to their RANKING: the ROC AUC of score(positive) - score(negative) over the
probe set may be at most 0.08 below zero-shot's (and at least 0.8). Why not accuracy: after the examples,
this 135M model scores "positive" above "negative" for nearly every review (50% correct, the reference
too), yet the margin still orders the reviews (AUC 0.97-1.0; with the examples' labels flipped 0.82-0.89).
Such label biases of few-shot prompts are studied by Zhao et al. 2021, https://arxiv.org/abs/2102.09690.
Only plain data crosses the sandbox boundary: your classifier stays in the sandbox.

THREADS. Graders run several jobs side by side on a few cores; torch's worker threads then wait on each other
and a model runs many times slower. ``torch.set_num_threads(1)`` at import avoids that (the reference does).
"""

from __future__ import annotations

LABELS = ("positive", "negative")
SYSTEM = "You are a careful assistant that classifies the sentiment of movie reviews."
QUESTION = "Is the sentiment of this review positive or negative? Answer with one word."
INSTRUCTIONS = "Decide whether the writer of the review below liked the film. " + QUESTION


def user_turn(text: str) -> str:
    """``"Review: " + text + "\\n" + QUESTION`` (the text exactly as given)."""
    raise NotImplementedError


def zero_shot_messages(text: str) -> list[dict[str, str]]:
    """[system SYSTEM, user user_turn(text)]."""
    raise NotImplementedError


def few_shot_messages(text: str, shots: list[dict[str, str]]) -> list[dict[str, str]]:
    """[system SYSTEM, (user user_turn(shot["text"]), assistant shot["label"]) per shot, user user_turn(text)].

    Args:
        shots: [{"text": str, "label": "positive" | "negative"}, ...], used in this order; a shot whose text
            equals ``text`` is left out.
    """
    raise NotImplementedError


def instruction_messages(text: str) -> list[dict[str, str]]:
    """[system SYSTEM, user INSTRUCTIONS + "\n\nReview: " + text]."""
    raise NotImplementedError


def parse_label(output: str) -> str | None:
    """The first whole word "positive" or "negative" in ``output`` (any case), lower-cased; None if none."""
    raise NotImplementedError


class PromptClassifier:
    """The instruct model with its tokenizer, prompted three ways.

    The checks call it like this:
        clf = PromptClassifier(model_dir)
        clf.prompt_ids(messages)                      # [int, ...]
        clf.encode_pair(context, continuation)        # ([int, ...], [int, ...])
        clf.label_logprobs(messages, ["positive", "negative"])   # [float, float]
        clf.score(texts, style="zero" | "few" | "instruction", shots=None)      # [[float, float], ...]
        clf.classify(texts, style="zero" | "few" | "instruction", shots=None)   # ["positive", ...]
        clf.generate(messages, max_new_tokens=12, seed=3, max_time_s=10.0)       # str
    """

    def __init__(self, model_dir: str) -> None:
        """Load ``AutoTokenizer`` and ``AutoModelForCausalLM`` from ``model_dir`` (eval mode)."""
        raise NotImplementedError

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The token ids of the rendered prompt (chat template, generation prompt, no added special tokens)."""
        raise NotImplementedError

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) cut from the joined encoding (see THE PROMPT/ANSWER BOUNDARY).

        Raises:
            ValueError: the joined encoding does not start with the context's ids, or the continuation is empty.
        """
        raise NotImplementedError

    def label_logprobs(self, messages: list[dict[str, str]],
                       labels: tuple[str, ...] | list[str] = LABELS) -> list[float]:
        """For each label, the summed log-probability of its tokens after the rendered prompt (floats)."""
        raise NotImplementedError

    def score(self, texts: list[str], style: str = "zero",
              shots: list[dict[str, str]] | None = None) -> list[list[float]]:
        """Per text, label_logprobs of the style's messages for each label in LABELS (in that order).

        Raises:
            ValueError: ``style`` is not "zero", "few" or "instruction".
        """
        raise NotImplementedError

    def classify(self, texts: list[str], style: str = "zero",
                 shots: list[dict[str, str]] | None = None) -> list[str]:
        """The label with the highest score for each text, under the given prompt style.

        Raises:
            ValueError: ``style`` is not "zero", "few" or "instruction".
        """
        raise NotImplementedError

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int = 16, seed: int = 0,
                 max_time_s: float = 10.0, temperature: float = 0.7, top_p: float = 0.9) -> str:
        """Sampled, seeded, time-bounded generation after the rendered prompt; only the new text."""
        raise NotImplementedError
