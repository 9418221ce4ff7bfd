"""Custom objectives (RLHF-style): a Bradley-Terry reward model, and DPO against a frozen reference model.

Preference learning trains on PAIRS: one prompt, a CHOSEN completion (the preferred one) and a REJECTED one.
Two ways to use them:

* A REWARD MODEL (Ouyang et al. 2022, InstructGPT, https://arxiv.org/abs/2203.02155, section 3.5) scores a
  whole sequence with one number r(x, y), trained with the pairwise Bradley-Terry loss

      L_RM = -log sigmoid(r(x, y_chosen) - r(x, y_rejected))         averaged over the pairs.

  A causal model's summary of a sequence is its hidden state at the LAST REAL TOKEN (earlier positions do not
  see the end), so the reward is a linear score of that hidden state: never of a padding position.

* DPO, Direct Preference Optimization (Rafailov et al. 2023, https://arxiv.org/abs/2305.18290, eq. 7) trains
  the policy directly, against a frozen copy of the starting model, the REFERENCE:

      chosen_reward   = beta * (log pi(y_c | x) - log ref(y_c | x))
      rejected_reward = beta * (log pi(y_r | x) - log ref(y_r | x))
      L_DPO = -log sigmoid(chosen_reward - rejected_reward)                one loss per pair

  This is TRL's DPOTrainer with loss_type="sigmoid" (https://huggingface.co/docs/trl/dpo_trainer; trl 1.16
  ``DPOTrainer._compute_loss``). TRL is not part of this course's environment, so the grader checks your loss
  against the formula computed on its own side (and against TRL's helper where TRL happens to be installed).
  At the start the policy IS the reference, so every loss is exactly ln 2 = 0.693147.

SEQUENCE LOG-PROBS. log pi(y | x) is the SUM over the completion tokens of log p(token | all tokens before
it); the prompt tokens and the padding add nothing. A causal LM's logits at position t predict the token at
t + 1, so shift by one:

      logp[n] = sum_{t >= 1} completion_mask[n, t] * log_softmax(logits[n, t - 1])[input_ids[n, t]]

THE MODELS are tiny Llamas (Hugging Face ``transformers``) built by the grader. You receive ``config``, a
dict of ``transformers.LlamaConfig`` keyword arguments, and ``weights``, a dict of tensors (a state_dict):

      from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification
      policy = LlamaForCausalLM(LlamaConfig(**config)); policy.load_state_dict(weights)
      scorer = LlamaForSequenceClassification(LlamaConfig(**config, num_labels=1)); scorer.load_state_dict(w)

The reward model's weights are LlamaForSequenceClassification's: ``model.*`` (the Llama backbone) and
``score.weight`` (1, hidden_size), a linear score without bias. Do not call that class's own forward for
rewards (it finds the last token by comparing ids with pad_token_id): run ``scorer.model`` and apply
``scorer.score`` to the hidden state of each row's last real token yourself, as described below.

TOKENS are bytes: a token id is a UTF-8 byte (0..255), BOS_ID = 256 starts every prompt, PAD_ID = 257 pads
(``config["pad_token_id"]``); vocab_size 258. Token ids arrive as lists of ints or int64 tensors.

THE PAIRS (made by the grader from the offline Wikipedia sample, the ``wiki-sample`` asset): a sentence of
at least 48 ASCII characters is cut into a prompt (BOS + its first 8-16 bytes) and a chosen completion (the
next 12-24 bytes, as written); the rejected completion is the same text with about half of its letters
replaced by random lowercase letters (typos). So "prefer text as written over text with typos" is the
preference to learn. You train on pairs from the TRAIN split; the grader measures the result on pairs from
the TEST split that you never see. Each pair is a dict ``{"prompt": [ids], "chosen": [ids], "rejected": [ids]}``.

PADDING AND POSITIONS. Batches built by ``collate_pairs`` are padded on the RIGHT. ``RewardModel.rewards``
must also accept LEFT-padded batches: read the last REAL token (the last 1 in attention_mask, wherever it
is). Pass ``position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)`` to the backbone too, so that a
sequence's first real token is at position 0 however it is padded (Llama's rotary positions only see
differences of positions, so a constant shift happens to be harmless here; a model with learned absolute
positions, such as GPT-2, would give left-padded rows other rewards without it). A sequence's reward must not depend on
its padding or its batch: alone, right-padded and left-padded give the same reward (within 1e-4).

TRAINING. ``step(pairs, lr)`` is ONE plain gradient-descent step on the MEAN loss over ``pairs``:
``p -= lr * grad`` for every trainable parameter (torch.optim.SGD(params, lr) with no momentum and no weight
decay does exactly that), returning the loss computed before the update. ``fit`` trains with
``torch.optim.AdamW(params, lr=lr, weight_decay=0.0)`` for exactly ``steps`` steps, each on a mini-batch of
``batch_size`` pairs drawn with replacement from a generator seeded with ``seed``, for example
``torch.randint(len(pairs), (batch_size,), generator=torch.Generator().manual_seed(seed))`` (one Generator
for the whole run), and returns every step's loss (before its update) as Python floats. Zero the gradients
before every backward pass. The same seed must give the same losses.

THE REFERENCE MODEL is frozen: a separate deep copy of the starting policy (``copy.deepcopy``), in eval
mode, with ``requires_grad_(False)``, whose log-probs are computed under ``torch.no_grad()``. No gradient may
reach it and no optimiser may hold its parameters. The checks look at ``trainer.reference`` and
``trainer.policy`` directly (both LlamaForCausalLM) after a step.

WHAT THE CHECKS DO. They compare every function with a reference (log-probs within rtol=1e-4, atol=2e-4;
losses within 1e-5; token tensors exactly), take two SGD steps on your trainer and on theirs, look for
gradients on your reference model, train yours with ``fit`` and then score the hidden pairs THEMSELVES with
the weights you return (``policy_weights()``, ``weights()``): the cpu profile asks that, after DPO's 20 steps
(lr 3e-3, beta 0.1, batches of 16), the implicit reward beta * ((pi_c - ref_c) - (pi_r - ref_r)) ranks chosen
above rejected on at least 80% of hidden pairs, and that after 40 reward-model steps (lr 3e-3) the reward
model does on at least 80% (chance is 50%; the reference reaches about 95% on both). Only plain data crosses
the sandbox boundary: tensors, lists, dicts, floats; your models stay in the sandbox.

SPEED. The models are tiny (two layers of width 64), so torch's threads cost more than they save: call
``torch.set_num_threads(1)`` once (at import) and a training run takes seconds.
"""

from __future__ import annotations

from typing import Any

import torch

Pair = dict[str, list[int]]


def collate_pairs(pairs: list[Pair], pad_id: int) -> dict[str, torch.Tensor]:
    """Batch preference pairs into one right-padded tensor batch, chosen rows first (TRL's layout).

    Row i (0 <= i < B) is ``prompt_i + chosen_i``; row B + i is ``prompt_i + rejected_i``; every row is
    padded on the right with ``pad_id`` to the longest of the 2B rows. Build new lists: do not change the
    pairs' lists in place (extending a prompt list would corrupt the rejected row built from it later).

    Returns:
        {"input_ids": (2B, T) int64, "attention_mask": (2B, T) int64, 1 on real tokens (prompt and
        completion), 0 on padding, "completion_mask": (2B, T) int64, 1 on completion tokens only}.

    Raises:
        ValueError: ``pairs`` is empty, or a prompt, chosen or rejected completion is empty.
    """
    raise NotImplementedError


def sequence_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence log-probability of the completion: the shifted token log-probs summed where the mask is 1.

    Args:
        logits: (N, T, V) float32 or float64, the model's output on ``input_ids``.
        input_ids: (N, T) int64.
        completion_mask: (N, T) int64 or bool, 1/True on completion tokens (0 on prompt and padding).

    Returns:
        (N,) in logits' dtype: ``sum_{t>=1} completion_mask[:, t] * log_softmax(logits[:, t-1])[input_ids[:, t]]``.
        Use log_softmax (stable), not log(softmax(...)).
    """
    raise NotImplementedError


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DPO loss of each pair, and the two implicit rewards (TRL's loss_type="sigmoid").

    Args:
        policy_chosen, policy_rejected, reference_chosen, reference_rejected: (B,) sequence log-probs.
        beta: > 0, the strength of the pull towards the reference (0.1 is usual).

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each (B,) in the inputs' dtype:
        chosen_rewards = beta * (policy_chosen - reference_chosen), rejected_rewards likewise, and
        losses = -F.logsigmoid(chosen_rewards - rejected_rewards) (finite even for margins of -100 or less,
        where -log(sigmoid(z)) overflows in float32). One loss per pair: the caller takes the mean. The
        rewards are for logging (detach them); the losses carry the gradient.

    Raises:
        ValueError: ``beta <= 0``, or the four tensors differ in shape.
    """
    raise NotImplementedError


def reward_pair_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """The Bradley-Terry loss: ``-F.logsigmoid(chosen_rewards - rejected_rewards).mean()``, a 0-dim tensor.

    Args:
        chosen_rewards, rejected_rewards: (B,) float rewards of each pair's two completions.
    """
    raise NotImplementedError


class RewardModel:
    """A tiny Llama backbone with a scalar score read at each sequence's last real token.

    The checks call it like this:
        rm = RewardModel(config, weights)                      # LlamaForSequenceClassification weights
        rm.rewards(input_ids, attention_mask)                  # right- or left-padded
        rm.step(pairs, lr=0.5); rm.fit(pairs, steps=40, lr=3e-3, batch_size=16, seed=0); rm.weights()
    """

    def __init__(self, config: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
        """Build LlamaForSequenceClassification(LlamaConfig(**config, num_labels=1)) and load ``weights``."""
        raise NotImplementedError

    def rewards(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(N,) float32 rewards, no gradient: ``score(hidden state at the row's last real token)``.

        Run the backbone with ``attention_mask`` and ``position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)``;
        find each row's last real token from attention_mask (right AND left padding).
        """
        raise NotImplementedError

    def step(self, pairs: list[Pair], lr: float) -> float:
        """One SGD step (p -= lr * grad) on reward_pair_loss over the right-padded collated ``pairs``.

        Returns the loss before the update, as a float.
        """
        raise NotImplementedError

    def fit(self, pairs: list[Pair], steps: int, lr: float = 3e-3, batch_size: int = 16,
            seed: int = 0) -> list[float]:
        """AdamW (weight_decay=0) for exactly ``steps`` seeded mini-batch steps; returns each step's loss."""
        raise NotImplementedError

    def weights(self) -> dict[str, torch.Tensor]:
        """The current weights as a plain ``dict`` (not the OrderedDict state_dict() returns), the given keys."""
        raise NotImplementedError


class DPOTrainer:
    """DPO: a trainable ``self.policy`` and its frozen ``self.reference``, both LlamaForCausalLM.

    The checks call it like this:
        trainer = DPOTrainer(config, weights, beta=0.1)
        trainer.logprobs(input_ids, attention_mask, completion_mask)   # {"policy": (N,), "reference": (N,)}
        trainer.loss(pairs); trainer.step(pairs, lr=20.0)
        trainer.fit(pairs, steps=20, lr=3e-3, batch_size=16, seed=0); trainer.policy_weights()
    """

    def __init__(self, config: dict[str, Any], weights: dict[str, torch.Tensor], beta: float = 0.1) -> None:
        """``self.policy``: LlamaForCausalLM with ``weights``; ``self.reference``: its frozen deep copy."""
        raise NotImplementedError

    def logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 completion_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sequence log-probs (no gradient) of a right-padded batch under both models: {"policy", "reference"}."""
        raise NotImplementedError

    def loss(self, pairs: list[Pair]) -> float:
        """The mean DPO loss over ``pairs`` (collated with config's pad_token_id), as a float, no update."""
        raise NotImplementedError

    def step(self, pairs: list[Pair], lr: float) -> float:
        """One SGD step (p -= lr * grad) of the policy on the mean DPO loss; returns the loss before it."""
        raise NotImplementedError

    def fit(self, pairs: list[Pair], steps: int, lr: float = 3e-3, batch_size: int = 16,
            seed: int = 0) -> list[float]:
        """AdamW (weight_decay=0) on the policy for exactly ``steps`` seeded mini-batch steps; each step's loss."""
        raise NotImplementedError

    def policy_weights(self) -> dict[str, torch.Tensor]:
        """The policy's current weights as a plain ``dict`` with the keys of the weights you were given."""
        raise NotImplementedError
