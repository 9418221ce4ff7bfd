"""Reference: knowledge distillation (Hinton et al. 2015) with the KL form, T^2 scaling and batchmean."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

# GIVEN (keep): the models are tiny, and on a shared machine more threads only wait for each other
torch.set_num_threads(1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    classes = student_logits.shape[-1]
    s = student_logits.reshape(-1, classes)
    t = teacher_logits.detach().reshape(-1, classes)
    if mask is not None:
        keep = mask.reshape(-1).bool()
        s, t = s[keep], t[keep]
    log_p_s = F.log_softmax(s / temperature, dim=-1)
    log_p_t = F.log_softmax(t / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * temperature**2


def make_mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def kd_loss_grad(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    student = student_logits.detach().clone().requires_grad_(True)
    kd_loss(student, teacher_logits, temperature, mask).backward()
    assert student.grad is not None
    return student.grad


class Distiller:
    def __init__(self, teacher_state: dict[str, torch.Tensor], teacher_sizes: list[int], student_sizes: list[int],
                 *, temperature: float = 2.0, alpha: float = 0.9, lr: float = 1e-2, dropout: float = 0.1,
                 seed: int = 0) -> None:
        self.teacher = make_mlp(teacher_sizes, dropout)
        self.teacher.load_state_dict(teacher_state)
        self.teacher.eval().requires_grad_(False)
        torch.manual_seed(seed)
        self.student = make_mlp(student_sizes, dropout)
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=lr)
        self.temperature = temperature
        self.alpha = alpha

    def train_step(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, object]:
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        self.student.train()
        student_logits = self.student(x)
        loss = (self.alpha * kd_loss(student_logits, teacher_logits, self.temperature)
                + (1 - self.alpha) * F.cross_entropy(student_logits, labels))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.student.eval()
        return {"loss": float(loss.detach()), "teacher_logits": teacher_logits}

    def fit(self, x: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int = 32, seed: int = 0
            ) -> list[float]:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        losses = []
        for _ in range(steps):
            idx = torch.randint(len(x), (batch_size,), generator=generator)
            losses.append(float(self.train_step(x[idx], labels[idx])["loss"]))
        return losses

    @torch.no_grad()
    def student_logits(self, x: torch.Tensor) -> torch.Tensor:
        self.student.eval()
        return self.student(x)

    # given in the stub: read by the checks
    def student_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.student.state_dict().items()}

    def teacher_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.teacher.state_dict().items()}

    def teacher_grads(self) -> list[torch.Tensor | None]:
        return [None if p.grad is None else p.grad.detach().clone() for p in self.teacher.parameters()]
