"""Public checks of prompt-engineering: exact prompts and token ids, the prompt/answer boundary, label
log-likelihoods, the answer parser and seeded, time-bounded generation."""

from __future__ import annotations

import math
import time

import pytest

from grader.testing import StudentCodeError, expect_type, record

TEXTS = [
    "A warm, funny and beautifully acted film.",
    "Na\u00efve caf\u00e9 owners \u00fcber-hype their croissants \u2615",
    "It's   not   great\tat all...",
]


def _expect_messages(got, want, what):
    expect_type(got, list, what)
    assert got == want, (
        f"{what} differs from the format the stub specifies (roles, order and exact wording):\n"
        f"got  {got!r:.400}\nwant {want!r:.400}")


def _ids_advice(got, want, trusted, messages):
    plain = trusted.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    if got == trusted.tokenizer(plain, add_special_tokens=False)["input_ids"]:
        return ("the prompt ends without the assistant's turn: render with add_generation_prompt=True so the model "
                "answers as the assistant")
    if len(got) > len(want) and got[-len(want):] == want:
        return "special tokens were added twice: the chat template already has them (add_special_tokens=False)"
    return ("render the messages with the model's own chat template (tokenizer.apply_chat_template(messages, "
            "tokenize=False, add_generation_prompt=True)) and encode that text without adding special tokens")


def _expect_prompt_ids(clf, trusted, messages, pe, what):
    got = pe.expect_ids(clf.prompt_ids(messages), what)
    want = trusted.prompt_ids(messages)
    assert got == want, f"{_ids_advice(got, want, trusted, messages)}\n{what}: got {got[-12:]}, want {want[-12:]}"


@pytest.mark.points(1)
def test_zero_shot_and_instruction_rendering(student, reference, trusted, pe, model_dir):
    """zero-shot and instruction messages are exact, and render to the reference's token ids"""
    clf = pe.classifier(student, model_dir)
    for text in TEXTS:
        for kind in ("zero_shot_messages", "instruction_messages"):
            want = getattr(reference, kind)(text)
            _expect_messages(getattr(student, kind)(text), want, f"{kind}({text!r})")
            _expect_prompt_ids(clf, trusted, want, pe, f"prompt_ids({kind}({text!r}))")


@pytest.mark.points(1)
def test_few_shot_format(student, reference, trusted, pe, pool, model_dir):
    """few-shot examples are user/assistant turns before the question, and never the question itself"""
    clf = pe.classifier(student, model_dir)
    shots = pe.pick_shots(pool, 2, seed=0)
    cases = [(TEXTS[0], shots), (shots[1]["text"], shots), (TEXTS[1], shots[:1])]
    for text, given in cases:
        want = reference.few_shot_messages(text, given)
        got = student.few_shot_messages(text, given)
        if isinstance(got, list) and any(m.get("content") == reference.user_turn(text) for m in got[:-1]
                                         if isinstance(m, dict)):
            raise AssertionError("the question is among its own few-shot examples: skip any shot whose text is "
                                 "the text being classified (it would hand the model the answer)")
        if isinstance(got, list) and got != want:
            roles = [m.get("role") if isinstance(m, dict) else None for m in got]
            answers = [m.get("content") for m in got if isinstance(m, dict) and m.get("role") == "assistant"]
            wanted = [m["content"] for m in want if m["role"] == "assistant"]
            if "assistant" not in roles and given:
                raise AssertionError("the examples are not their own turns: each example is a user turn "
                                     "user_turn(example text) followed by an assistant turn holding its label")
            if answers != wanted and len(answers) == len(wanted):
                raise AssertionError(f"the assistant turns say {answers} where the examples' labels are {wanted}: "
                                     "each example's assistant turn holds ITS OWN label")
        _expect_messages(got, want, f"few_shot_messages(text, {len(given)} shots)")
        _expect_prompt_ids(clf, trusted, want, pe, f"prompt_ids(few_shot_messages(..., {len(given)} shots))")


PAIRS = [("Answer:", " positive"), ("Answer: ", "positive"), ("Answer:  ", "positive"), ("I love it", "!!!"),
         ("Review: great\nSentiment:", " negative"), ("Sentiment:\n", "positive")]
MERGING = [("hel", "lo"), ("The film", "s are great"), ("It was posi", "tive and fun")]


@pytest.mark.points(2)
def test_encode_pair_boundary(student, reference, trusted, pe, model_dir):
    """encode_pair tokenises context and continuation joined, cut at the context: trailing spaces move over"""
    clf = pe.classifier(student, model_dir)
    rendered = trusted.render(reference.zero_shot_messages(TEXTS[0]))
    for context, continuation in [*PAIRS, (rendered, "positive"), (rendered, "negative")]:
        what = f"encode_pair({context[-24:]!r}, {continuation!r})"
        try:
            got = clf.encode_pair(context, continuation)
        except StudentCodeError as exc:
            if exc.exc_type != "ValueError":
                raise
            raise AssertionError(
                f"{what} raised ValueError, but this pair does not merge across the boundary: "
                + ("trailing spaces of the context belong to the continuation: move them over before tokenising "
                   "(\"Answer: \" + \"C\" is \"Answer:\" + \" C\")" if context.endswith(" ") else
                   "compare the joined encoding's start with the context's own ids")) from None
        want = trusted.encode_pair(context, continuation)
        expect_type(got, (list, tuple), what)
        assert len(got) == 2, f"{what} should return (context_ids, continuation_ids)"
        head, tail = pe.expect_ids(got[0], what), pe.expect_ids(got[1], what)
        if (head, tail) != (list(want[0]), list(want[1])):
            separate = (trusted.encode_pair(context, "x")[0] if not context.endswith(" ") else None,
                        trusted.tokenizer(continuation, add_special_tokens=False)["input_ids"])
            hint = ("trailing spaces of the context belong to the continuation: move them over before tokenising "
                    "(\"Answer: \" + \"C\" is \"Answer:\" + \" C\")" if context.endswith(" ") else
                    "tokenise context + continuation JOINED and cut it after the context's tokens; tokenising "
                    "the two separately gives other ids at the boundary" if tail == separate[1] else
                    "the context ids are tokenizer(context) without special tokens; the continuation ids are the "
                    "rest of the joined encoding")
            raise AssertionError(f"{hint}\n{what}: got {head[-4:]} + {tail}, expected {want[0][-4:]} + {want[1]}")
    for context, continuation in MERGING:
        with pytest.raises(StudentCodeError) as caught:
            clf.encode_pair(context, continuation)
            pytest.fail(f"encode_pair({context!r}, {continuation!r}) should raise ValueError: the joined encoding "
                        "does not start with the context's tokens (the last token merges across the boundary): "
                        "tokenise context + continuation JOINED and compare its start with the context's own ids")
        assert caught.value.exc_type == "ValueError", f"raise ValueError, not {caught.value.exc_type}"


def _close(got, want):
    return abs(got - want) <= 2e-3 + 1e-4 * abs(want)


def _logprob_advice(clf, trusted, messages, labels, got):
    """Name the mistake behind wrong label log-likelihoods, where it is a recognisable one."""
    if clf.prompt_ids(messages) != trusted.prompt_ids(messages):
        return ("the prompt the labels follow is not the rendered one: render with the chat template and "
                "add_generation_prompt=True (prompt_ids differs from the reference's)")
    spaced = trusted.label_logprobs(messages, [" " + label for label in labels])
    if all(_close(g, w) for g, w in zip(got, spaced, strict=True)):
        return ("the labels were scored with a leading space: after the generation prompt (which ends in a newline) "
                "the label follows directly, \"positive\" not \" positive\"")
    lengths = [len(trusted.encode_pair(trusted.render(messages), label)[1]) for label in labels]
    want = trusted.label_logprobs(messages, labels)
    if any(n > 1 for n in lengths) and all(_close(g * n, w) for g, n, w in zip(got, lengths, want, strict=True)):
        return "the log-probabilities were averaged over a label's tokens: SUM them (the log of the product)"
    return ("sum, over the label's tokens (from encode_pair(rendered prompt, label)), of log_softmax(logits at the "
            "PREVIOUS position)[token]: a causal LM's logits at position t predict the token at t + 1")


@pytest.mark.points(2)
def test_label_logprobs(student, reference, trusted, pe, pool, model_dir):
    """label_logprobs sums the model's log-probs of each label's tokens after the rendered prompt"""
    clf = pe.classifier(student, model_dir)
    cases = [(reference.zero_shot_messages(TEXTS[0]), list(pe.LABELS)),
             (reference.few_shot_messages(TEXTS[2], pe.pick_shots(pool, 1, seed=1)), list(pe.LABELS)),
             (reference.instruction_messages(TEXTS[1]), ["positive", "negative", "not sure", "Mixed feelings"])]
    for messages, labels in cases:
        got = clf.label_logprobs(messages, labels)
        want = trusted.label_logprobs(messages, labels)
        expect_type(got, (list, tuple), "label_logprobs(messages, labels)")
        assert len(got) == len(labels), f"label_logprobs returned {len(got)} scores for {len(labels)} labels"
        for g in got:
            assert type(g) in (float, int) and math.isfinite(g), f"label_logprobs should return finite floats: {g!r}"
        if all(_close(g, w) for g, w in zip(got, want, strict=True)):
            continue
        worst = max(range(len(labels)), key=lambda j: abs(got[j] - want[j]))
        raise AssertionError(
            f"{_logprob_advice(clf, trusted, messages, labels, got)}\nthe log-likelihood of {labels[worst]!r} is "
            f"{got[worst]:.4f}, expected {want[worst]:.4f}")
    record("label_logprobs", [round(v, 4) for v in want])


@pytest.mark.points(1)
def test_classify_picks_the_likeliest_label(student, reference, trusted, pe, pool, model_dir):
    """score gives each label's log-likelihood per text; classify takes the likeliest; bad styles raise"""
    clf = pe.classifier(student, model_dir)
    texts = [TEXTS[0], "Dull, slow and far too long.", TEXTS[2]]
    shots = pe.pick_shots(pool, 1, seed=2)
    for style, given in (("zero", None), ("few", shots), ("instruction", None)):
        want_scores = trusted.score(texts, style=style, shots=given)
        want = [pe.LABELS[max(range(len(pe.LABELS)), key=row.__getitem__)] for row in want_scores]
        scores = pe.expect_scores(clf.score(texts, style=style, shots=given), len(texts), len(pe.LABELS),
                                  f"score(texts, style={style!r})")
        for text, row, want_row in zip(texts, scores, want_scores, strict=True):
            close = all(abs(g - w) <= 2e-3 + 1e-4 * abs(w) for g, w in zip(row, want_row, strict=True))
            assert close, (
                f"score(style={style!r}) gave {[round(v, 3) for v in row]} for {text!r}, expected "
                f"{[round(v, 3) for v in want_row]}: per text, label_logprobs of the style's messages for each "
                "label in LABELS, in that order")
        got = pe.expect_labels(clf.classify(texts, style=style, shots=given), len(texts), f"classify({style!r})")
        assert got == want, (
            f"classify(style={style!r}) gave {got}, but the labels of highest log-likelihood are {want}: take, per "
            "text, the label whose score is the LARGEST")
    for call in ("score", "classify"):
        with pytest.raises(StudentCodeError) as caught:
            clf.call(call, texts[:1], style="chain-of-thought")
            pytest.fail(f"{call}(..., style='chain-of-thought') should raise ValueError: only zero, few, instruction")
        assert caught.value.exc_type == "ValueError", (
            f"{call} should raise ValueError for an unknown style, not {caught.value.exc_type}")


OUTPUTS = [
    ("positive", "positive"), ("Negative", "negative"), ("Positive.", "positive"), (" negative\n", "negative"),
    ("**Positive**", "positive"), ("Sentiment: Negative", "negative"), ("POSITIVE!", "positive"),
    ("The sentiment of the review: positive.", "positive"), ("I would say negative.", "negative"),
    ("Positive. The negative reviews are wrong.", "positive"), ("negative, not positive", "negative"),
    ("neutral", None), ("", None), ("I cannot tell.", None), ("positively charming", None),
    ("Answer:\n\nnegative", "negative"), ("The review is 'positive'", "positive"),
]


@pytest.mark.points(1)
def test_parse_label(student):
    """parse_label returns the first label word of the output (case-insensitive, whole words), or None"""
    for output, want in OUTPUTS:
        got = student.parse_label(output)
        assert got == want, (
            f"parse_label({output!r}) returned {got!r}, expected {want!r}: find the FIRST whole word 'positive' or "
            "'negative' in any case (re.search(r'\\b(positive|negative)\\b', output, re.IGNORECASE)), lower-cased; "
            "None when there is none")


@pytest.mark.points(1)
@pytest.mark.timeout_s(120)
def test_generation_seeded_and_bounded(student, reference, pe, model_dir):
    """generate samples with its seed (same seed, same text), stops at max_new_tokens and at max_time_s"""
    clf = pe.classifier(student, model_dir)
    messages = reference.zero_shot_messages(TEXTS[0])
    first = clf.generate(messages, max_new_tokens=12, seed=3)
    expect_type(first, str, "generate(...)")
    again = clf.generate(messages, max_new_tokens=12, seed=3)
    assert first == again, (
        f"generate with seed=3 gave {first!r}, then {again!r}: seed the sampler (torch.manual_seed(seed)) right "
        "before model.generate(..., do_sample=True)")
    if "Review:" in first or "<|im_start|>" in first:
        raise AssertionError(
            f"generate returned the prompt too ({first[:60]!r}...): decode only the NEW tokens, those after the "
            "prompt's length in model.generate's output, with skip_special_tokens=True")
    words = len(first.split())  # BPE tokens never span a space: a word is at least one token
    assert words <= 12, (
        f"generate(..., max_new_tokens=12) wrote {words} words, so more than 12 tokens: pass max_new_tokens to "
        "model.generate")
    story = [{"role": "user", "content": "Write a very long story about a dragon, with many chapters."}]
    start = time.monotonic()
    long = clf.generate(story, max_new_tokens=400, seed=0, max_time_s=1.0)
    elapsed = time.monotonic() - start
    expect_type(long, str, "generate(...)")
    record("bounded_generation_s", round(elapsed, 2))
    assert elapsed < 12.0, (
        f"generate(..., max_new_tokens=400, max_time_s=1.0) took {elapsed:.1f} s: pass max_time=max_time_s to "
        "model.generate, which stops decoding once that much time has passed")
