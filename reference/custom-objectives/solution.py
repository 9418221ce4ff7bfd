"""Custom objectives: a Bradley-Terry reward model and DPO against a frozen reference (reference solution)."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F

Pair = dict[str, list[int]]
torch.set_num_threads(1)  # tiny models: one thread is fastest, and never fights other processes for cores


def collate_pairs(pairs: list[Pair], pad_id: int) -> dict[str, torch.Tensor]:
    if not pairs:
        raise ValueError("collate_pairs needs at least one pair")
    rows: list[list[int]] = []
    starts: list[int] = []
    for key in ("chosen", "rejected"):
        for pair in pairs:
            prompt, completion = list(pair["prompt"]), list(pair[key])
            if not prompt or not completion:
                raise ValueError(f"a pair has an empty prompt or an empty {key} completion")
            rows.append(prompt + completion)
            starts.append(len(prompt))
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    completion_mask = torch.zeros_like(input_ids)
    for i, (row, start) in enumerate(zip(rows, starts, strict=True)):
        input_ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, :len(row)] = 1
        completion_mask[i, start:len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}


def sequence_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    if logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(input_ids.shape):
        raise ValueError("logits must be (N, T, V) and input_ids (N, T)")
    if tuple(completion_mask.shape) != tuple(input_ids.shape):
        raise ValueError("completion_mask must have input_ids' shape")
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
    per_token = log_probs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (per_token * completion_mask[:, 1:].to(per_token.dtype)).sum(dim=-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    shapes = {tuple(t.shape) for t in (policy_chosen, policy_rejected, reference_chosen, reference_rejected)}
    if len(shapes) != 1:
        raise ValueError(f"the four log-prob tensors must have one shape, got {sorted(shapes)}")
    chosen = beta * (policy_chosen - reference_chosen)
    rejected = beta * (policy_rejected - reference_rejected)
    losses = -F.logsigmoid(chosen - rejected)
    return losses, chosen.detach(), rejected.detach()


def reward_pair_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """The position of the last real token of each row, for right and left padding alike."""
    width = attention_mask.shape[-1]
    return (width - 1) - attention_mask.flip(-1).to(torch.long).argmax(dim=-1)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.to(torch.long).cumsum(-1) - 1).clamp(min=0)


def build_causal_lm(config: dict[str, Any], weights: dict[str, torch.Tensor]) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(**config))
    model.load_state_dict(weights)
    return model


def _batches(n: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(n, (batch_size,), generator=generator).tolist() for _ in range(steps)]


def _train(params: Any, loss_of: Any, pairs: list[Pair], steps: int, lr: float, batch_size: int,
           seed: int) -> list[float]:
    """AdamW on ``params`` for ``steps`` seeded mini-batches of pairs; each step's loss before its update."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    losses = []
    for idx in _batches(len(pairs), steps, batch_size, seed):
        loss = loss_of([pairs[i] for i in idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def _sgd_step(params: list[torch.nn.Parameter], loss: torch.Tensor, lr: float) -> None:
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            p.sub_(lr * g)


class RewardModel:
    def __init__(self, config: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
        from transformers import LlamaConfig, LlamaForSequenceClassification

        self.model = LlamaForSequenceClassification(LlamaConfig(**config, num_labels=1))
        self.model.load_state_dict(weights)
        self.pad_id = int(config["pad_token_id"])

    def _rewards(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model.model(input_ids=input_ids, attention_mask=attention_mask,
                                  position_ids=position_ids(attention_mask)).last_hidden_state
        last = hidden[torch.arange(hidden.shape[0]), last_token_index(attention_mask)]
        return self.model.score(last).squeeze(-1)

    def rewards(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._rewards(input_ids, attention_mask)

    def _loss(self, pairs: list[Pair]) -> torch.Tensor:
        batch = collate_pairs(pairs, self.pad_id)
        rewards = self._rewards(batch["input_ids"], batch["attention_mask"])
        return reward_pair_loss(rewards[:len(pairs)], rewards[len(pairs):])

    def step(self, pairs: list[Pair], lr: float) -> float:
        loss = self._loss(pairs)
        _sgd_step(list(self.model.parameters()), loss, lr)
        return float(loss.detach())

    def fit(self, pairs: list[Pair], steps: int, lr: float = 3e-3, batch_size: int = 16,
            seed: int = 0) -> list[float]:
        return _train(self.model.parameters(), self._loss, pairs, steps, lr, batch_size, seed)

    def weights(self) -> dict[str, torch.Tensor]:
        return {name: t.detach().clone() for name, t in self.model.state_dict().items()}


class DPOTrainer:
    def __init__(self, config: dict[str, Any], weights: dict[str, torch.Tensor], beta: float = 0.1) -> None:
        self.policy = build_causal_lm(config, weights)
        self.reference = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.beta = float(beta)
        self.pad_id = int(config["pad_token_id"])

    @staticmethod
    def _logps(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return sequence_logprobs(logits, batch["input_ids"], batch["completion_mask"])

    def logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 completion_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}
        with torch.no_grad():
            return {"policy": self._logps(self.policy, batch), "reference": self._logps(self.reference, batch)}

    def _loss(self, pairs: list[Pair]) -> torch.Tensor:
        batch = collate_pairs(pairs, self.pad_id)
        policy = self._logps(self.policy, batch)
        with torch.no_grad():
            reference = self._logps(self.reference, batch)
        n = len(pairs)
        losses, _, _ = dpo_loss(policy[:n], policy[n:], reference[:n], reference[n:], self.beta)
        return losses.mean()

    def loss(self, pairs: list[Pair]) -> float:
        with torch.no_grad():
            return float(self._loss(pairs))

    def step(self, pairs: list[Pair], lr: float) -> float:
        loss = self._loss(pairs)
        _sgd_step(list(self.policy.parameters()), loss, lr)
        return float(loss.detach())

    def fit(self, pairs: list[Pair], steps: int, lr: float = 3e-3, batch_size: int = 16,
            seed: int = 0) -> list[float]:
        return _train(self.policy.parameters(), self._loss, pairs, steps, lr, batch_size, seed)

    def policy_weights(self) -> dict[str, torch.Tensor]:
        return {name: t.detach().clone() for name, t in self.policy.state_dict().items()}
