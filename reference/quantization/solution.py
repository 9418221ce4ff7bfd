"""Reference: per-channel int8 weights, a weight-only int8 linear layer, dynamic int8 with torch.ao."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("encoder", "causal-lm")
MODES = ("float", "dynamic", "weight-only")


def quantize_per_channel_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(f"expected a 2-D float weight, got {weight.dim()}-D {weight.dtype}")
    w = weight.detach().float()
    scale = w.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(w / scale[:, None]), -127, 127).to(torch.int8)
    return q, scale


def dequantize_per_channel(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale[:, None]


class Int8WeightOnlyLinear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        q, scale = quantize_per_channel_int8(weight)
        self.register_buffer("weight", q)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_float(cls, linear: nn.Linear) -> Int8WeightOnlyLinear:
        return cls(linear.weight, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.to(x.dtype) * self.scale[:, None].to(x.dtype), self.bias)

    def state(self) -> dict[str, Any]:
        return {"weight": self.weight.clone(), "scale": self.scale.clone(),
                "bias": None if self.bias is None else self.bias.clone()}


def dynamic_linear(weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(nn.Sequential(layer), {nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        return quantized(x.float())


def _swap_weight_only(model: nn.Module, skip: set[str]) -> None:
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and full not in skip:
                setattr(module, child_name, Int8WeightOnlyLinear.from_float(child))


class QuantizedModel:
    def __init__(self, model_dir: str, *, kind: str, mode: str, skip: list[str] | tuple[str, ...] = ()) -> None:
        from transformers import AutoModel, AutoModelForCausalLM

        if kind not in KINDS or mode not in MODES:
            raise ValueError(f"kind must be one of {KINDS} and mode one of {MODES}, got {kind!r}, {mode!r}")
        loader = AutoModel if kind == "encoder" else AutoModelForCausalLM
        model = loader.from_pretrained(model_dir, dtype=torch.float32).eval()
        skip = set(skip)
        if mode == "dynamic":
            spec = {name: torch.ao.quantization.default_dynamic_qconfig for name, m in model.named_modules()
                    if isinstance(m, nn.Linear) and name not in skip}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.ao's eager quantisation is deprecated in torch 2.13
                model = torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)
        elif mode == "weight-only":
            _swap_weight_only(model, skip)
        self.model, self.kind = model, kind

    def module_types(self) -> dict[str, str]:
        return {name: f"{type(m).__module__}.{type(m).__qualname__}" for name, m in self.model.named_modules() if name}

    @torch.inference_mode()
    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.kind != "encoder":
            raise ValueError("embed needs an encoder")
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)

    @torch.inference_mode()
    def token_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.kind != "causal-lm":
            raise ValueError("token_logprobs needs a causal LM")
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
        return logits.log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)

    def save_state(self, path: str, module: str = "") -> None:
        torch.save(self.model.get_submodule(module).state_dict(), path)
