"""Public checks of the model and the trainer: torch's layers, causality, greedy generation, checkpoints."""

import copy

import pytest
import torch

from grader.testing import expect_close, expect_tensor, expect_type

CONFIGS = [
    {"vocab_size": 28, "context_length": 8, "d_model": 16, "num_layers": 1, "num_heads": 2, "d_ff": 32},
    {"vocab_size": 50, "context_length": 12, "d_model": 24, "num_layers": 3, "num_heads": 4, "d_ff": 48},
]
LAYOUT = ("logits = lm_head(norm(h)), h = tok_emb(ids) + pos_emb(0..T-1) through pre-norm blocks "
          "x = x + attn(norm1(x)); x = x + linear2(gelu(linear1(norm2(x)))), attention causal with "
          "in_proj = [W_q; W_k; W_v] and scores / sqrt(d_model / num_heads)")


def _variant_diagnose(tt, oracle, ids):
    """Name the mistake when the logits match a classic variant of the oracle."""
    def no_mask(model, x):
        h = model.tok_emb(x) + model.pos_emb(torch.arange(x.shape[1]))
        with torch.enable_grad():
            for layer in model.layers:
                h = layer(h)
            return model.lm_head(model.norm(h)).detach()

    def no_positions(model, x):
        h = model.tok_emb(x)
        future = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).triu(1)
        with torch.enable_grad():
            for layer in model.layers:
                h = layer(h, src_mask=future)
            return model.lm_head(model.norm(h)).detach()

    post = copy.deepcopy(oracle)
    for layer in post.layers:
        layer.norm_first = False
    variants = [(lambda: no_mask(oracle, ids), "the logits match a model WITHOUT the causal mask: block keys j > i"),
                (lambda: no_positions(oracle, ids), "the logits match a model without position embeddings: add "
                                                    "pos_emb(arange(T)) to the token embeddings"),
                (lambda: tt.oracle_logits(post, ids), "the logits match POST-norm blocks: this model is pre-norm, "
                                                      "x = x + attn(norm1(x)), x = x + mlp(norm2(x))")]

    def diagnose(actual, expected):
        for compute, message in variants:
            if torch.allclose(actual, compute(), rtol=1e-4, atol=1e-4):
                return message
        return None
    return diagnose


@pytest.mark.points(2)
def test_model_matches_torch(student, tt, targets):
    """TinyLM with torch's weights loaded gives the logits of the same model built from torch's layers"""
    for i, config in enumerate(CONFIGS):
        oracle = tt.torch_lm(config, seed=i)
        model = student.new("TinyLM", *tt.model_args(config))
        model.load_torch_weights(tt.state_of(oracle))
        model.handle("eval")
        for batch, length in ((3, config["context_length"]), (2, config["context_length"] - 3)):
            ids = tt.random_ids(config, batch, length)
            got = expect_tensor(model.forward(ids), shape=(batch, length, config["vocab_size"]), dtype=torch.float32,
                                what=f"forward(ids of shape ({batch}, {length}))")
            expect_close(got, tt.oracle_logits(oracle, ids), targets=targets,
                         what=f"logits, configuration {i + 1} ({config['num_layers']} layers)", advice=LAYOUT,
                         diagnose=_variant_diagnose(tt, oracle, ids))


@pytest.mark.points(1)
def test_model_is_causal(student, tt):
    """changing the tokens after position t leaves the logits up to t unchanged (the student's own weights)"""
    config = CONFIGS[1]
    model = student.new("TinyLM", *tt.model_args(config))
    model.handle("eval")
    ids = tt.random_ids(config, 2)
    length = config["context_length"]
    base = expect_tensor(model.forward(ids), shape=(2, length, config["vocab_size"]), what="forward(ids)")
    for t in range(length - 1):
        changed = ids.clone()
        changed[:, t + 1:] = (ids[:, t + 1:] + 1 + torch.randint(0, 10, (2, length - t - 1))) % config["vocab_size"]
        out = expect_tensor(model.forward(changed), shape=tuple(base.shape), what="forward(changed ids)")
        leak = float((out[:, : t + 1] - base[:, : t + 1]).abs().max())
        assert leak <= 1e-5, (
            f"changing the tokens after position {t} changed the logits at positions 0..{t} (by up to {leak:.3g}): "
            "the attention sees the future; block every key j > i with a causal mask before the softmax. (A model "
            "that sees the next token reaches a training loss that is too low to be honest)")


@pytest.mark.points(1)
def test_generate_greedy(student, tt):
    """generate is greedy: each new token is the argmax of the model's logits on the last context_length tokens"""
    trainer = student.new("Trainer", tt.SMALL, 0)
    trainer.load_torch_weights(tt.state_of(tt.torch_lm(tt.SMALL, seed=3)))
    context = tt.SMALL["context_length"]
    prompt, new = [1, 2, 3], context + 3  # longer than the context: the window must slide
    out = trainer.generate(prompt, new)
    expect_type(out, list, "generate(prompt, max_new_tokens)")
    assert len(out) == len(prompt) + new and out[: len(prompt)] == prompt, (
        f"generate returned {len(out)} tokens: return the prompt followed by exactly max_new_tokens={new} new ones")
    assert all(type(t) is int for t in out), "generate should return a list of Python ints"
    again = trainer.generate(prompt, new)
    assert again == out, "two greedy generations from the same prompt differ: take the argmax, do not sample"
    for i in range(len(prompt), len(out)):
        window = out[max(0, i - context):i]
        logits = expect_tensor(trainer.logits(torch.tensor([window])), shape=(1, len(window), None),
                               what="logits(ids)")
        best = int(logits[0, -1].argmax())
        assert out[i] == best, (
            f"token {i} is {out[i]}, but the argmax of your own logits on the {len(window)} tokens before it is "
            f"{best}: feed the model the last context_length={context} tokens (ids[-context_length:]) and take "
            "the argmax of the logits at the last position")


@pytest.mark.points(1)
def test_checkpoint_round_trip(student, tt, targets):
    """a checkpoint restores the model, the optimiser state and the step in a fresh Trainer"""
    config = {**tt.SMALL, "warmup_iters": 4, "cosine_cycle_iters": 12}
    data = torch.randint(0, config["vocab_size"], (400,))
    batches = [tt.random_ids(config, 4, 9) for _ in range(2)]
    probe = tt.random_ids(config, 3)
    first = student.new("Trainer", config, 1)
    tt.expect_losses(first.train(data, 3), 3, "train(data, 3)")
    path = "tiny-transformer.ckpt"  # relative: the sandbox's scratch folder, the worker's working directory
    first.save_checkpoint(path)
    saved = expect_tensor(first.logits(probe), what="logits(ids)")
    later = tt.expect_losses([first.train_step(b[:, :-1], b[:, 1:]) for b in batches], 2, "train_step(x, y)")
    after = expect_tensor(first.logits(probe), what="logits(ids)")
    fresh = student.new("Trainer", config, 2)
    step = fresh.load_checkpoint(path)
    assert type(step) is int and step == 3, (
        f"load_checkpoint returned {step!r} after 3 training steps: return the restored step (an int)")
    assert fresh.get("step") == 3, "after load_checkpoint, trainer.step must be the restored step (3)"
    expect_close(expect_tensor(fresh.logits(probe), shape=tuple(saved.shape), what="logits after loading"), saved,
                 targets=targets, what="logits of the restored model", advice=(
                     "the restored model differs from the saved one: save model.state_dict() and load it back"))
    resumed = tt.expect_losses([fresh.train_step(b[:, :-1], b[:, 1:]) for b in batches], 2, "train_step(x, y)")
    advice = ("training on from the checkpoint differs from training on without it: save and restore the "
              "optimiser's state (optimizer.state_dict(): AdamW's moments and step counts) and the step (the "
              "learning-rate schedule depends on it)")
    expect_close(torch.tensor(resumed), torch.tensor(later), targets=targets, advice=advice,
                 what="losses of the two steps after the checkpoint")
    expect_close(expect_tensor(fresh.logits(probe), shape=tuple(after.shape), what="logits"), after, targets=targets,
                 what="logits after two more steps from the checkpoint", advice=advice)
