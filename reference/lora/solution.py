"""Reference: LoRA with peft, a LoRA linear layer, and instruction examples for a chat model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

IGNORE_INDEX = -100


# -- GIVEN: loading the base model (the same in the stub) -----------------------------------------------------
def load_base_model(source: str | dict[str, Any]) -> nn.Module:
    """A LlamaForCausalLM in fp32, eval mode: from a model folder, or from {"config": ..., "state_dict": ...}."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if isinstance(source, str):
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    else:
        model = LlamaForCausalLM(LlamaConfig(**source["config"])).to(torch.float32)
        model.load_state_dict(source["state_dict"])
    return model.eval()


# -- the exercise ---------------------------------------------------------------------------------------------
class LoRALinear:
    """A frozen linear layer plus a LoRA adapter, here made by peft's own LoRA layer."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, r: int, alpha: float) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        if int(r) < 1:
            raise ValueError(f"r must be >= 1, got {r}")
        holder = nn.Module()
        holder.lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            holder.lin.weight.copy_(weight)
            if bias is not None:
                holder.lin.bias.copy_(bias)
        inject_adapter_in_model(LoraConfig(r=int(r), lora_alpha=alpha, target_modules=["lin"], lora_dropout=0.0),
                                holder)
        self.holder = holder
        self.layer = holder.lin

    def _a(self) -> nn.Parameter:
        return self.layer.lora_A["default"].weight

    def _b(self) -> nn.Parameter:
        return self.layer.lora_B["default"].weight

    def scaling(self) -> float:
        return float(self.layer.scaling["default"])

    def adapter(self) -> dict[str, torch.Tensor]:
        return {"A": self._a().detach().clone(), "B": self._b().detach().clone()}

    def set_adapter(self, A: torch.Tensor, B: torch.Tensor) -> None:
        if tuple(A.shape) != tuple(self._a().shape) or tuple(B.shape) != tuple(self._b().shape):
            raise ValueError(f"A must be {tuple(self._a().shape)} and B {tuple(self._b().shape)}")
        with torch.no_grad():
            self._a().copy_(A)
            self._b().copy_(B)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.layer(x)

    def trainable_parameter_count(self) -> int:
        return sum(p.numel() for p in self.holder.parameters() if p.requires_grad)

    def backward(self, x: torch.Tensor, grad_output: torch.Tensor) -> dict[str, torch.Tensor | None]:
        self.holder.zero_grad(set_to_none=True)
        self.layer(x).backward(grad_output)
        base = self.layer.base_layer

        def grad(p: nn.Parameter | None) -> torch.Tensor | None:
            return None if p is None or p.grad is None else p.grad.detach().clone()

        out = {"A": grad(self._a()), "B": grad(self._b()), "weight": grad(base.weight), "bias": grad(base.bias)}
        self.holder.zero_grad(set_to_none=True)
        return out

    def merge(self) -> None:
        self.layer.merge()

    def unmerge(self) -> None:
        self.layer.unmerge()

    def weight(self) -> torch.Tensor:
        return self.layer.base_layer.weight.detach().clone()


def encode_example(tokenizer_dir: str, prompt: str, response: str, max_length: int = 96) -> dict[str, list[int]]:
    from transformers import AutoTokenizer

    tokenizer = _tokenizer(tokenizer_dir, AutoTokenizer)
    prompt_ids = list(tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                    add_generation_prompt=True)["input_ids"])
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_length]
    return {"input_ids": ids, "labels": labels}


_TOKENIZERS: dict[str, Any] = {}


def _tokenizer(path: str, auto: Any) -> Any:
    if path not in _TOKENIZERS:
        _TOKENIZERS[path] = auto.from_pretrained(path)
    return _TOKENIZERS[path]


def collate(examples: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    if not examples:
        raise ValueError("collate needs at least one example")
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class LoraFineTuner:
    def __init__(self, source: str | dict[str, Any], *, r: int = 8, alpha: float = 16,
                 target_modules: list[str] | tuple[str, ...] = ("q_proj", "v_proj"), init: str = "default",
                 seed: int = 0, device: str = "cpu") -> None:
        from peft import LoraConfig, get_peft_model

        if int(r) < 1:
            raise ValueError(f"r must be >= 1, got {r}")
        if not target_modules:
            raise ValueError("target_modules is empty")
        if init not in ("default", "random"):
            raise ValueError(f"init must be 'default' or 'random', got {init!r}")
        torch.manual_seed(seed)
        config = LoraConfig(r=int(r), lora_alpha=alpha, target_modules=list(target_modules), lora_dropout=0.0,
                            init_lora_weights=init == "default", task_type="CAUSAL_LM")
        self.device = device
        self.model = get_peft_model(load_base_model(source), config).to(device).eval()

    def parameter_counts(self) -> dict[str, int]:
        trainable, total = self.model.get_nb_trainable_parameters()
        return {"trainable": int(trainable), "total": int(total)}

    def adapter_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(self.model).items()}

    def base_state(self) -> dict[str, torch.Tensor]:
        base = self.model.get_base_model()
        return {k.replace(".base_layer", ""): v.detach().cpu().clone() for k, v in base.state_dict().items()
                if "lora_" not in k}

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.model.eval()
        mask = None if attention_mask is None else attention_mask.to(self.device)
        return self.model(input_ids=input_ids.to(self.device), attention_mask=mask).logits.float().cpu()

    @torch.no_grad()
    def base_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        with self.model.disable_adapter():
            return self.logits(input_ids, attention_mask)

    @torch.no_grad()
    def merged_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        self.model.merge_adapter()
        try:
            return self.logits(input_ids, attention_mask)
        finally:
            self.model.unmerge_adapter()

    def grad_names(self, batch: dict[str, torch.Tensor]) -> list[str]:
        self.model.zero_grad(set_to_none=True)
        self.model(**{k: v.to(self.device) for k, v in batch.items()}).loss.backward()
        names = [n for n, p in self.model.named_parameters() if p.grad is not None]
        self.model.zero_grad(set_to_none=True)
        return names

    def train(self, batches: list[dict[str, torch.Tensor]], steps: int, lr: float = 2e-3) -> list[float]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        self.model.train()
        losses = []
        for step in range(steps):
            batch = batches[step % len(batches)]
            loss = self.model(**{k: v.to(self.device) for k, v in batch.items()}).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        self.model.eval()
        return losses

    def save_adapter(self, path: str) -> None:
        self.model.save_pretrained(path)

    def load_adapter(self, path: str) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(self.model, load_file(f"{path}/adapter_model.safetensors", device=self.device))
