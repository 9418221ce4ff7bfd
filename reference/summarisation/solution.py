"""Reference: fine-tune a pre-trained encoder-decoder (BART/T5) for summarisation; ROUGE with rouge-score."""

from __future__ import annotations

import re
import unicodedata

import torch

IGNORE_INDEX = -100
# a 1.3 M-parameter model: a second thread buys little and, on busy shared cores, costs a lot
torch.set_num_threads(1)
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
T5_FAMILY = ("t5", "mt5", "umt5")


def task_prefix(model_type: str) -> str:
    return "summarize: " if model_type in T5_FAMILY else ""


class UnicodeTokenizer:
    """rouge-score's tokenisation, but keeping the letters and digits of every script."""

    def __init__(self) -> None:
        from nltk.stem import porter

        self.stemmer = porter.PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        words = re.split(r"[\W_]+", unicodedata.normalize("NFKC", text).lower())
        return [self.stemmer.stem(w) if len(w) > 3 else w for w in words if w]


def rouge_scores(targets: list[str], predictions: list[str]) -> list[dict[str, dict[str, float]]]:
    from rouge_score import rouge_scorer

    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=UnicodeTokenizer())
    out = []
    for target, prediction in zip(targets, predictions, strict=True):
        scores = scorer.score(target, prediction)
        out.append({k: {"precision": float(s.precision), "recall": float(s.recall), "fmeasure": float(s.fmeasure)}
                    for k, s in scores.items()})
    return out


class Summariser:
    def __init__(self, model_dir: str, max_source_length: int = 64, max_target_length: int = 16) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
        self.prefix = task_prefix(self.model.config.model_type)
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length

    def tokenize(self, documents: list[str], summaries: list[str] | None = None) -> dict[str, torch.Tensor]:
        if not documents:
            raise ValueError("no documents")
        if summaries is not None and len(summaries) != len(documents):
            raise ValueError(f"{len(documents)} documents but {len(summaries)} summaries")
        batch = self.tokenizer([self.prefix + d for d in documents], max_length=self.max_source_length,
                               truncation=True, padding=True, return_tensors="pt")
        out = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if summaries is not None:
            target = self.tokenizer(text_target=summaries, max_length=self.max_target_length, truncation=True,
                                    padding=True, return_tensors="pt")
            out["labels"] = target["input_ids"].masked_fill(target["attention_mask"] == 0, IGNORE_INDEX)
        return out

    def decoder_inputs(self, labels: torch.Tensor) -> torch.Tensor:
        config = self.model.config
        shifted = labels.new_full(labels.shape, config.decoder_start_token_id)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == IGNORE_INDEX, config.pad_token_id)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          decoder_input_ids=self.decoder_inputs(batch["labels"]), labels=batch["labels"]).loss

    @torch.no_grad()
    def loss(self, documents: list[str], summaries: list[str]) -> torch.Tensor:
        self.model.eval()
        device = self.model.device
        return self._loss({k: v.to(device) for k, v in self.tokenize(documents, summaries).items()}).cpu()

    def fit(self, documents: list[str], summaries: list[str], steps: int, batch_size: int = 16, lr: float = 1e-3,
            seed: int = 0, device: str = "cpu") -> list[float]:
        if len(documents) != len(summaries) or not documents:
            raise ValueError(f"{len(documents)} documents but {len(summaries)} summaries")
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        self.model.to(device).train()
        optimiser = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)
        losses = []
        for _ in range(steps):
            if len(documents) <= batch_size:
                picked = list(range(len(documents)))
            else:
                picked = torch.randint(len(documents), (batch_size,), generator=generator).tolist()
            batch = self.tokenize([documents[i] for i in picked], [summaries[i] for i in picked])
            loss = self._loss({k: v.to(device) for k, v in batch.items()})
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.item()))
        self.model.eval()
        return losses

    @torch.no_grad()
    def summarise(self, documents: list[str], max_new_tokens: int = 16, num_beams: int = 1) -> list[str]:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.model.eval()
        texts: list[str] = []
        for start in range(0, len(documents), 64):  # bounded memory for long hub documents
            batch = {k: v.to(self.model.device) for k, v in self.tokenize(documents[start:start + 64]).items()}
            out = self.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                      max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False)
            texts += self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [text.strip() for text in texts]

    def save(self, path: str) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
