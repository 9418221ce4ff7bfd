"""Knowledge distillation: train a small student to match a large teacher's softened predictions.

Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network" (https://arxiv.org/abs/1503.02531):
a teacher's full output distribution says more than its top label ("this 3 looks a bit like an 8"). Soften
both distributions with a temperature T > 1 and train the student to match them:

    p_t = softmax(teacher_logits / T)          q_s = softmax(student_logits / T)
    KD  = T^2 * KL(p_t || q_s) = T^2 * sum_c p_t[c] * (log p_t[c] - log q_s[c])     averaged over positions

The T^2 keeps the gradient's size independent of T (the softened gradients shrink as 1/T^2; Hinton et al.
section 2). This is what DistilBERT's distiller computes (Sanh et al. 2019, https://arxiv.org/abs/1910.01108):
``F.kl_div(log_softmax(s / T), softmax(t / T), reduction="batchmean") * T**2`` over the non-padding positions.

WHICH FORM IS GRADED BY VALUE: the KL form above. The "soft cross-entropy" form
``-T^2 * sum_c p_t[c] * log q_s[c]`` (the PyTorch knowledge-distillation tutorial) differs from it by
T^2 times the teacher's entropy: a constant for the student, so both give the SAME gradient and train the
same student; the checks of the loss's gradient and of training accept both, the checks of its value (and of
"zero for identical logits", true of the KL form only) ask for the KL form.

REDUCTION "batchmean": the sum over positions and classes divided by the number of POSITIONS (rows), not by
positions x classes (``reduction="mean"``, which also divides by the number of classes: wrong) and not by
the batch size when logits carry a sequence axis. Logits may be (n, C) or (batch, seq, C); with a ``mask``
(batch, seq) bool, True = real token, only the real positions count: padding adds nothing to the sum and
is not counted in the divisor. ``F.kl_div`` takes the student's LOG-probabilities first and the teacher's
probabilities second (or log-probabilities with ``log_target=True``).

THE TRAINING LOSS of a student step mixes the soft and the hard targets:

    loss = alpha * KD(student_logits, teacher_logits, T) + (1 - alpha) * F.cross_entropy(student_logits, labels)

THE TEACHER IS FROZEN: it runs in eval mode (``teacher.eval()``: its dropout off, so its targets are the
deterministic predictions it was trained to make) and without gradients (``torch.no_grad()`` or
``requires_grad_(False)``), and it is never given to the optimizer. Careful: ``model.train()`` on a module
that contains the teacher switches the teacher back to training mode too.

THE MODELS are MLPs made by ``make_mlp`` (given below): the checks build a larger teacher
([16, 128, 128, 10], trained on the trusted side) and pass you its ``state_dict``; your student is small
([16, 32, 10]). The task is 10-way classification of 16-dimensional points; your student gets only a few
dozen labelled points (the teacher's knowledge is what it lacks), and the checks compare it, on hidden
points, with a student of the same size trained on the hard labels alone, with the same steps and seed.
Only plain data crosses the sandbox boundary: tensors, lists, dicts of tensors.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

# GIVEN (keep): the models are tiny, and on a shared machine more threads only wait for each other
torch.set_num_threads(1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), "batchmean" over the (unmasked) positions.

    Args:
        student_logits: (..., C) float, e.g. (n, C) or (batch, seq, C).
        teacher_logits: the same shape; it gets no gradient from this loss (detach it).
        temperature: T > 0.
        mask: None (every position counts) or student_logits.shape[:-1] bool, True where a position counts.

    Returns:
        A 0-dim tensor: the sum over counted positions of T^2 * sum_c p_t (log p_t - log q_s), divided by the
        number of counted positions.

    Raises:
        ValueError: when temperature <= 0.
    """
    raise NotImplementedError


def kd_loss_grad(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """GIVEN (do not change): the gradient of YOUR kd_loss with respect to the student logits (the checks)."""
    student = student_logits.detach().clone().requires_grad_(True)
    kd_loss(student, teacher_logits, temperature, mask).backward()
    if student.grad is None:
        raise RuntimeError("kd_loss gave no gradient to the student logits")
    return student.grad


def make_mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """GIVEN (do not change): Linear layers of the given sizes, with ReLU then Dropout between them.

    make_mlp([16, 128, 128, 10], 0.1) = Linear(16,128) ReLU Dropout Linear(128,128) ReLU Dropout Linear(128,10).
    """
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class Distiller:
    """A frozen teacher and a student trained on alpha * KD + (1 - alpha) * cross-entropy.

    The checks call it like this:
        d = Distiller(teacher_state, [16, 128, 128, 10], [16, 32, 10], temperature=2.0, alpha=0.9, lr=1e-2,
                      dropout=0.1, seed=0)
        out = d.train_step(x, labels)          # {"loss": float, "teacher_logits": (batch, C) tensor}
        losses = d.fit(x, labels, steps=150, batch_size=32, seed=0)
        d.student_logits(x); d.student_state(); d.teacher_state(); d.teacher_grads()
    """

    def __init__(self, teacher_state: dict[str, torch.Tensor], teacher_sizes: list[int], student_sizes: list[int],
                 *, temperature: float = 2.0, alpha: float = 0.9, lr: float = 1e-2, dropout: float = 0.1,
                 seed: int = 0) -> None:
        """Build the teacher with ``make_mlp(teacher_sizes, dropout)`` and load ``teacher_state`` into it, freeze
        it and put it in eval mode; then ``torch.manual_seed(seed)`` and build the student with
        ``make_mlp(student_sizes, dropout)``; and ``torch.optim.AdamW(student parameters only, lr=lr)``.
        Keep the two models as ``self.teacher`` and ``self.student`` (the given methods below read them)."""
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, object]:
        """One optimiser step of the student on ``x`` (batch, 16) float32 and ``labels`` (batch,) int64.

        The teacher's logits come from the frozen teacher (eval mode, no gradients); the student runs in train
        mode; loss = alpha * kd_loss(student, teacher, temperature) + (1 - alpha) * cross_entropy(student, labels);
        zero the gradients, backward, step.

        Returns:
            {"loss": the step's loss as a Python float (before the update), "teacher_logits": the (batch, C)
            teacher logits this step used}.
        """
        raise NotImplementedError

    def fit(self, x: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int = 32, seed: int = 0
            ) -> list[float]:
        """Exactly ``steps`` train_step calls, each on ``batch_size`` rows drawn with replacement with a
        ``torch.Generator().manual_seed(seed)``; also ``torch.manual_seed(seed)`` first (the student's dropout).
        Returns the losses (Python floats)."""
        raise NotImplementedError

    def student_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The student's (n, C) logits in eval mode, without gradients."""
        raise NotImplementedError

    # GIVEN (do not change): what the checks read back from the sandbox.
    def student_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.student.state_dict().items()}

    def teacher_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.teacher.state_dict().items()}

    def teacher_grads(self) -> list[torch.Tensor | None]:
        return [None if p.grad is None else p.grad.detach().clone() for p in self.teacher.parameters()]
