"""Classic DPO and reward-model mistakes, recomputed, to name the one a wrong value matches (trusted side).

This module computes the exercise's quantities (the right way and the wrong ways), so it lives beside the
hidden checks and is left out of student packs; ``conftest.py`` loads it when it is there.  Without it a
wrong value still fails, with the check's general advice.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def _close(actual: torch.Tensor, other: torch.Tensor) -> bool:
    if tuple(actual.shape) != tuple(other.shape):
        return False
    return bool(torch.allclose(actual.double(), other.double(), rtol=1e-4, atol=2e-4))


def _per_token(logits: torch.Tensor, ids: torch.Tensor, shift: bool = True) -> torch.Tensor:
    if shift:
        return torch.log_softmax(logits[:, :-1].double(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return torch.log_softmax(logits.double(), -1).gather(-1, ids[:, :, None]).squeeze(-1)


def logprobs(actual: torch.Tensor, logits: torch.Tensor, ids: torch.Tensor, completion: torch.Tensor,
             attention: torch.Tensor) -> str | None:
    """Name the mistake a wrong sequence_logprobs result matches."""
    shifted, unshifted = _per_token(logits, ids), _per_token(logits, ids, shift=False)
    comp, att = completion.double(), attention.double()
    variants = {
        "the log-probs are AVERAGED over the completion tokens: DPO sums them (sum, not mean)":
            (shifted * comp[:, 1:]).sum(-1) / comp[:, 1:].sum(-1).clamp(min=1),
        "the PROMPT tokens are counted: sum only where completion_mask is 1 (the prompt is given, not generated)":
            (shifted * att[:, 1:]).sum(-1),
        "PADDING positions are counted: multiply by completion_mask so pad tokens add nothing":
            shifted.sum(-1) - (shifted * (1 - comp[:, 1:]) * att[:, 1:]).sum(-1),
        "the logits are not shifted: logits[:, t] predicts token t+1, so use logits[:, :-1] with input_ids[:, 1:]":
            (unshifted * comp).sum(-1),
        "the mask is not shifted with the tokens: token input_ids[:, t] is kept by completion_mask[:, t], so "
        "multiply by completion_mask[:, 1:]": (shifted * comp[:, :-1]).sum(-1),
        "these are probabilities, not log-probabilities: take log_softmax, not softmax":
            (torch.softmax(logits[:, :-1].double(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
             * comp[:, 1:]).sum(-1),
    }
    return next((name for name, value in variants.items() if _close(actual, value)), None)


def dpo(actual: torch.Tensor, which: str, pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor,
        beta: float) -> str | None:
    """Name the mistake a wrong dpo_loss output (``which``: losses, chosen or rejected) matches."""
    chosen, rejected = beta * (pc - rc), beta * (pr - rr)
    variants = {
        "losses": {
            "beta scales only one side: both rewards are beta * (policy - reference)":
                -F.logsigmoid(chosen - (pr - rr)),
            "chosen and rejected are swapped: the loss is -log sigmoid(chosen_reward - rejected_reward)":
                -F.logsigmoid(rejected - chosen),
            "the reference model is left out: the rewards are beta * (policy - REFERENCE) log-ratios":
                -F.logsigmoid(beta * (pc - pr)),
            "the sign of the log-ratio is reversed: the reward is beta * (policy - reference), not the other way":
                -F.logsigmoid((beta * (rc - pc)) - (beta * (rr - pr))),
            "beta is missing: the loss is -log sigmoid(beta * (chosen log-ratio - rejected log-ratio))":
                -F.logsigmoid((pc - rc) - (pr - rr)),
            "return one loss PER PAIR (shape (B,)), not their mean":
                (-F.logsigmoid(chosen - rejected)).mean().expand(pc.shape),
        },
        "chosen": {"the chosen reward is beta * (policy_chosen - reference_chosen)": pc - rc},
        "rejected": {"the rejected reward is beta * (policy_rejected - reference_rejected)": pr - rr},
    }[which]
    if which == "losses" and actual.dtype == torch.float32 and not torch.isfinite(actual).all():
        return ("a loss is Inf for a large negative margin: -log(sigmoid(z)) underflows in float32; use "
                "-F.logsigmoid(z), which stays finite")
    return next((name for name, value in variants.items() if _close(actual, value)), None)


def rewards(actual: torch.Tensor, trusted: Any, ids: torch.Tensor, mask: torch.Tensor) -> str | None:
    """Name the mistake a wrong RewardModel.rewards result matches (``trusted``: the reference's RewardModel)."""
    model = trusted.model
    with torch.no_grad():
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        good = model.model(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
        rows = torch.arange(len(ids))
        score = model.score
        variants = {
            "the reward is read at the LAST POSITION, which is padding in shorter rows: read it at each row's last "
            "REAL token (the last 1 of attention_mask)": score(good[:, -1]).squeeze(-1),
            "the reward is read at index attention_mask.sum() - 1, which is right only for RIGHT padding: find the "
            "last 1 of attention_mask instead (left-padded rows end at the last position)":
                score(good[rows, (mask.sum(-1) - 1).clamp(min=0)]).squeeze(-1),
            "the reward is read at the FIRST token: a causal model's summary of the whole sequence is at its last "
            "real token": score(good[rows, mask.argmax(-1)]).squeeze(-1),
            "the reward is a mean over the tokens: read the score at the last real token only":
                score((good * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)).squeeze(-1),
        }
    return next((name for name, value in variants.items() if _close(actual, value)), None)
