"""Classic knowledge-distillation loss mistakes, recomputed to name the one a student made.

It computes distillation losses, so student packs leave it out (the checks then give general advice).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """sum_c exp(p_log) (p_log - q_log) per row."""
    return (p_log.exp() * (p_log - q_log)).sum(-1)


def candidates(s: torch.Tensor, t: torch.Tensor, temperature: float) -> dict[str, float]:
    """(n, C) logits -> the value each classic mistake gives, keyed by the advice that names it."""
    s, t, temp = s.double(), t.double(), float(temperature)
    ls, lt = F.log_softmax(s / temp, -1), F.log_softmax(t / temp, -1)
    classes = s.shape[-1]
    kl = _kl(lt, ls)
    return {
        "the T^2 factor is missing: multiply the KL by temperature**2": float(kl.mean()),
        "reduction 'mean' divides by the number of classes too: use reduction='batchmean' (divide by the number of "
        "positions only)": float(kl.mean() * temp**2 / classes),
        "this is the soft cross-entropy form -T^2 sum p_t log q_s: the graded value is the KL form, which subtracts "
        "the teacher's entropy (same gradient)": float(-(lt.exp() * ls).sum(-1).mean() * temp**2),
        "the KL is reversed: KL(teacher || student) = sum p_t (log p_t - log q_s); F.kl_div(input, target) takes "
        "the STUDENT's log-probabilities as input and the teacher's probabilities as target": float(
            _kl(ls, lt).mean() * temp**2),
        "the temperature divides only the student's logits: soften both": float(
            _kl(F.log_softmax(t, -1), ls).mean() * temp**2),
        "the temperature divides only the teacher's logits: soften both": float(
            _kl(lt, F.log_softmax(s, -1)).mean() * temp**2),
        "F.kl_div got probabilities where it needs the student's LOG-probabilities (log_softmax, not softmax)": float(
            F.kl_div(ls.exp(), lt.exp(), reduction="batchmean") * temp**2),
        "the temperature is not used at all: divide both logits by T before the softmax, and multiply by T^2": float(
            _kl(F.log_softmax(t, -1), F.log_softmax(s, -1)).mean()),
    }


def kd_diagnose(s: torch.Tensor, t: torch.Tensor, temperature: float, got: float) -> str | None:
    for advice, value in candidates(s, t, temperature).items():
        if abs(got - value) <= 1e-4 * max(1e-2, abs(value)):
            return advice
    return None
