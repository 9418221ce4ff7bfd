"""Public checks: perplexity from logits, the tokenizer (round trip, size, training split only), and the
student's own perplexity against the grader's recomputation from the student's logits."""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import StudentCodeError

PERPLEXITY = ("perplexity = exp(sum of the NLL of every REAL target / number of real targets), natural log, "
              "targets equal to pad_id left out of both sums")
ROUND_TRIP = ["Hello, world!", "naïve café — 日本語 ☕ ①", "  two  spaces\nand a new line\n", "x" * 300,
              " = = Early life = = \n"]


def _perplexity_diagnose(logits, targets, pad_id, got):
    """Name the mistake a returned perplexity matches."""
    nll = F.cross_entropy(logits.double().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                          reduction="none").view(targets.shape)
    real = targets != pad_id
    rows = [math.exp(float(n[r].mean())) for n, r in zip(nll, real, strict=True) if r.any()]
    variants = {"pad targets are counted: leave positions whose target is pad_id out of the mean":
                math.exp(float(nll.mean())),
                "that is 2 ** (mean NLL): the NLL is in nats, so use exp": 2 ** float(nll[real].mean()),
                "that is the mean of the rows' perplexities: average the NLL over all real tokens, then exp":
                sum(rows) / len(rows),
                "that is the mean NLL itself: return exp of it": float(nll[real].mean())}
    for message, value in variants.items():
        if abs(got - value) <= 1e-6 * abs(value):
            return message
    return None


@pytest.mark.points(1)
def test_perplexity_from_logits(student):
    """perplexity_from_logits is exp of the token-mean NLL over the real (non-pad) targets"""
    pad_id = 3
    for rows, length, vocab, pads in ((2, 5, 7, [0, 0]), (3, 6, 11, [0, 2, 5]), (4, 4, 50, [1, 0, 3, 2])):
        logits = torch.randn(rows, length, vocab) * 2
        targets = torch.randint(4, vocab, (rows, length))
        for row, n in enumerate(pads):
            if n:
                targets[row, -n:] = pad_id
        got = student.perplexity_from_logits(logits, targets, pad_id)
        assert type(got) is float, f"perplexity_from_logits should return a Python float, got {type(got).__name__}"
        want = math.exp(float(F.cross_entropy(logits.double().reshape(-1, vocab), targets.reshape(-1),
                                              ignore_index=pad_id)))
        if abs(got - want) > 1e-5 * want:
            named = _perplexity_diagnose(logits, targets, pad_id, got)
            raise AssertionError(f"{named or PERPLEXITY}\nperplexity_from_logits gave {got:.6g}, expected "
                                 f"{want:.6g} ({rows} rows with {pads} pad targets)")


@pytest.fixture(scope="session")
def small_splits(pt, job_files, assets):
    """A 400 kB slice of the training split, and the held-out splits with their canaries."""
    return pt.held_out_splits(job_files, assets, "small", train=pt.wiki_text(assets, "train", 400_000))


@pytest.fixture
def small(student, pt, small_splits):
    """A Pretrainer with the small configuration and its tokenizer trained on the 400 kB training slice."""
    trainer = student.new("Pretrainer", pt.SMALL, 0)
    trainer.train_tokenizer(small_splits)
    return trainer


@pytest.mark.points(1)
def test_tokenizer_round_trip(small, pt):
    """the tokenizer has exactly vocab_size entries, is lossless (decode(encode(t)) == t) and has a pad id"""
    vocab = pt.SMALL["vocab_size"]
    size = small.vocab_size()
    assert size == vocab, (
        f"the tokenizer has {size!r} entries, the configuration asks for vocab_size={vocab}: give "
        "BpeTrainer(vocab_size=config['vocab_size'], special_tokens=['<|endoftext|>', '<pad>'], "
        "initial_alphabet=pre_tokenizers.ByteLevel.alphabet()) (the model's embedding has vocab_size rows)")
    pad_id = pt.expect_pad_id(small, vocab)
    assert small.encode("") == [], "encode('') should be []"
    for text in ROUND_TRIP:
        ids = pt.expect_ids(small.encode(text), f"encode({text[:20]!r})", vocab)
        assert pad_id not in ids, f"encode({text[:20]!r}) produced the pad id: padding is for batches only"
        back = small.decode(ids)
        assert back == text, (
            f"decode(encode({text[:30]!r})) gave {back[:30]!r}: use a byte-level BPE (pre_tokenizers.ByteLevel("
            "add_prefix_space=False) with decoders.ByteLevel()), which keeps spaces and new lines, and give "
            "BpeTrainer initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), so that every one of the 256 bytes "
            "has a token even if the training text never used it (else such characters are dropped)")


@pytest.mark.points(2)
def test_tokenizer_trained_on_training_split_only(small, pt):
    """words found only in the held-out splits are not in the vocabulary: the tokenizer never saw them"""
    vocab = pt.SMALL["vocab_size"]
    pieces = {w: len(pt.expect_ids(small.encode(" " + w), f"encode(' {w}')", vocab)) for w in pt.CANARY_WORDS}
    learnt = [w for w, n in pieces.items() if n <= 2]
    assert not learnt, (
        f"{learnt} occur only in the valid and test splits (each a few hundred times), yet the tokenizer learnt "
        f"them as {[pieces[w] for w in learnt]} token(s): train the tokenizer on splits['train'] ONLY; "
        "held-out text must stay unseen, or its perplexity is no longer a fair test")


@pytest.mark.points(2)
def test_perplexity_matches_recomputation(small, pt, assets):
    """perplexity(text) equals the grader's recomputation from your logits (padding, ragged last batch)"""
    vocab, context, batch = pt.SMALL["vocab_size"], pt.SMALL["context_length"], pt.SMALL["batch_size"]
    pad_id = pt.expect_pad_id(small, vocab)
    held = pt.wiki_text(assets, "valid")
    cases = []
    for chars in (700, 2000, 90):  # about 5 chunks (a ragged last batch and chunk), about 14, and one
        text = held[:chars]
        mine = pt.recompute(small, text, context, vocab, pad_id)
        cases.append((chars, len(mine["windows"])))
        got = small.perplexity(text)
        assert type(got) is float, f"perplexity(text) should return a Python float, got {type(got).__name__}"
        want = mine["ppl"]
        if abs(got - want) <= 1e-4 * want:
            continue
        rows = mine["per_row"]
        means = [math.exp(n / c) for n, c in rows if c]
        batch_means = [sum(n for n, _ in rows[i: i + batch]) / sum(c for _, c in rows[i: i + batch])
                       for i in range(0, len(rows), batch)]
        named = {"that is the mean of the chunks' perplexities: sum the NLL of all real targets first":
                 sum(means) / len(means),
                 "that is exp of the mean of the batches' mean NLLs: the last batch is smaller, so sum the NLL and "
                 "count the real targets over all batches, then divide once": math.exp(sum(batch_means)
                                                                                     / len(batch_means))}
        hint = next((m for m, v in named.items() if abs(got - v) <= 1e-4 * v), None)
        raise AssertionError(
            f"{hint or 'your perplexity differs from the one recomputed from your own logits'}\n"
            f"perplexity of {chars} characters ({mine['tokens']} targets in {len(mine['windows'])} chunks): "
            f"got {got:.6g}, recomputed {want:.6g}. The chunks start every context_length tokens and hold "
            f"context_length + 1 of them (the last right-padded with pad_id); {PERPLEXITY}")


@pytest.mark.points(1)
def test_tokenizer_needed_first(student, pt):
    """encode before train_tokenizer raises RuntimeError (there is no vocabulary yet)"""
    trainer = student.new("Pretrainer", pt.SMALL, 0)
    with pytest.raises(StudentCodeError) as err:
        trainer.encode("hello")
        pytest.fail("encode() before train_tokenizer() returned: raise RuntimeError('train the tokenizer first')")
    assert err.value.exc_type == "RuntimeError", (
        f"encode() before train_tokenizer() raised {err.value.exc_type}: raise RuntimeError")


@pytest.mark.points(1)
def test_logits_are_causal(small, pt, seed):
    """logits(ids) has shape (B, T, vocab_size), float32, and position t depends on tokens 0..t only"""
    vocab, context = pt.SMALL["vocab_size"], pt.SMALL["context_length"]
    change = pt.causal_change(small, context, vocab, seed)
    assert change <= 1e-5, (
        f"changing only the second half of a window moved the logits of its first half (by up to {change:.3g}): "
        "the model reads tokens after the one it predicts, so it learns to copy the next token and its perplexity "
        "means nothing; give the attention a causal mask (is_causal=True, or an upper-triangular -inf mask)")


STEPS = 60


def _short_run(small, small_splits, pt, job_files, assets, name):
    """Train the small model STEPS steps: the losses, the progress lines and held-out perplexity before and after."""
    vocab, context = pt.SMALL["vocab_size"], pt.SMALL["context_length"]
    pad_id = pt.expect_pad_id(small, vocab)
    held = pt.wiki_text(assets, "valid", 3000)
    before = pt.recompute(small, held, context, vocab, pad_id)["ppl"]
    host, inside = job_files.shared_dir()
    losses = small.train(small_splits, STEPS, f"{inside}/{name}.jsonl")
    path = host / f"{name}.jsonl"
    lines = path.read_text(encoding="utf-8").split("\n")[:-1] if path.is_file() else []
    after = pt.recompute(small, held, context, vocab, pad_id)["ppl"]
    return losses, lines, before, after, held


@pytest.mark.points(1)
def test_progress_lines(small, small_splits, pt, job_files, assets):
    """a short train() returns one float loss per step and writes JSON progress lines: step 0, every log_every
    steps, the last step"""
    losses, lines, *_ = _short_run(small, small_splits, pt, job_files, assets, "progress")
    pt.expect_losses(losses, STEPS)
    records = pt.read_progress(lines)
    pt.expect_step_marks(records, pt.SMALL["log_every"], STEPS)


@pytest.mark.points(2)
def test_short_run_learns_next_token(small, small_splits, pt, job_files, assets):
    """60 steps of the small model lower held-out perplexity, and the model predicts the NEXT token, not the
    one it was given"""
    vocab, context = pt.SMALL["vocab_size"], pt.SMALL["context_length"]
    _, _, before, after, held = _short_run(small, small_splits, pt, job_files, assets, "learns")
    assert after <= before / 1.25, (
        f"after {STEPS} steps held-out perplexity went from {before:.0f} to {after:.0f}, hardly lower (the reference: "
        "about 2.5 times lower): does each step call zero_grad(), then loss.backward(), then optimizer.step() "
        "(zero_grad between backward and step throws the gradients away), with the learning rate set?")
    copies = pt.copy_rate(small, held, context, vocab)
    assert copies <= 0.3, (
        f"after training, the most likely next token is the token just read at {copies:.0%} of positions: the "
        "model learnt to copy its input. The targets are the inputs shifted by one: inputs = chunk[:, :-1], "
        "targets = chunk[:, 1:]")
