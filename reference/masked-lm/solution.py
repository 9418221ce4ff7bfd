"""Reference: BERT-style dynamic masking (80/10/10 over 15 % of eligible tokens) and MLM fine-tuning."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


class MLMMasker:
    def __init__(self, model_dir: str, mlm_probability: float = 0.15, mask_replace_prob: float = 0.8,
                 random_replace_prob: float = 0.1) -> None:
        for name, p in (("mlm_probability", mlm_probability), ("mask_replace_prob", mask_replace_prob),
                        ("random_replace_prob", random_replace_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {p}")
        if mask_replace_prob + random_replace_prob > 1.0:
            raise ValueError("mask_replace_prob + random_replace_prob must not exceed 1")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.mlm_probability = mlm_probability
        self.mask_replace_prob = mask_replace_prob
        self.random_replace_prob = random_replace_prob
        self.mask_token_id = int(tokenizer.mask_token_id)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        ids = torch.arange(len(tokenizer))
        self.replacement_ids = ids[~torch.isin(ids, self.special_ids)]

    def mask(self, input_ids: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(int(seed))
        eligible = ~torch.isin(input_ids, self.special_ids)
        selected = (torch.rand(input_ids.shape, generator=generator) < self.mlm_probability) & eligible
        u = torch.rand(input_ids.shape, generator=generator)
        to_mask = selected & (u < self.mask_replace_prob)
        to_random = selected & (u >= self.mask_replace_prob) & (u < self.mask_replace_prob + self.random_replace_prob)
        pick = torch.randint(len(self.replacement_ids), input_ids.shape, generator=generator)
        masked = input_ids.clone()
        masked[to_mask] = self.mask_token_id
        masked[to_random] = self.replacement_ids[pick[to_random]]
        labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
        return {"input_ids": masked, "labels": labels}

    def mask_epochs(self, input_ids: torch.Tensor, seeds: list[int]) -> list[dict[str, torch.Tensor]]:
        return [self.mask(input_ids, seed) for seed in seeds]


class MaskedLM:
    def __init__(self, model_dir: str, max_length: int = 32, mlm_probability: float = 0.15) -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForMaskedLM.from_pretrained(model_dir, local_files_only=True)
        self.masker = MLMMasker(model_dir, mlm_probability)
        self.max_length = max_length

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    @torch.no_grad()
    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    @torch.no_grad()
    def predict_masked(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       positions: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        hidden = self.model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.model.cls(hidden[positions])

    def fit(self, texts: list[str], steps: int, batch_size: int = 8, lr: float = 2e-4, seed: int = 0) -> list[float]:
        data = self.tokenize(texts)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.model.train()
        losses = []
        for step in range(steps):
            idx = torch.randint(len(texts), (batch_size,), generator=generator)
            ids, attention = data["input_ids"][idx], data["attention_mask"][idx]
            keep = int(attention.sum(dim=1).max())  # drop the columns that are padding in every row
            ids, attention = ids[:, :keep], attention[:, :keep]
            masked = self.masker.mask(ids, seed=seed * 100_003 + step)
            hidden = self.model.bert(input_ids=masked["input_ids"], attention_mask=attention).last_hidden_state
            chosen = masked["labels"] != -100
            loss = F.cross_entropy(self.model.cls(hidden[chosen]), masked["labels"][chosen])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        self.model.eval()
        return losses
