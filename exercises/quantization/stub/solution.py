"""Quantisation: int8 weights for a pre-trained encoder and a causal LM, measured for size, speed and quality.

Two int8 schemes, both post-training (no retraining) and both for ``nn.Linear`` layers, where almost all the
compute and most of the weights of a Transformer are:

1. WEIGHT-ONLY int8 (what LLM.int8-style and torchao's ``Int8WeightOnlyConfig`` do): store each weight as
   int8 with one float32 scale PER OUTPUT CHANNEL (row), symmetric (no zero point):
       scale[o] = max_i |W[o, i]| / 127      (a row of zeros: scale 1, so nothing divides by zero)
       q[o, i]  = clamp(round(W[o, i] / scale[o]), -127, 127)      int8
       W ~= q * scale[:, None]                                       (the dequantised weight)
   The layer keeps q and scale (and the float bias) and NOT the float weight: that is the 4x saving on the
   layer's weights. Its forward dequantises: y = x @ (q * scale)^T + b. One scale per row matters: rows of a
   trained weight differ in magnitude, and a single per-tensor scale crushes the small rows to zero.
   Rounding to nearest (not truncation) bounds the error by scale/2 per weight.

2. DYNAMIC int8 (PyTorch's eager API, https://pytorch.org/docs/stable/quantization.html):
       torch.ao.quantization.quantize_dynamic(model, qconfig_spec, dtype=torch.qint8)
   swaps each chosen nn.Linear for ``torch.ao.nn.quantized.dynamic.Linear``: int8 packed weights, and the
   activations quantised on the fly at run time, so the matmul itself runs in int8 (fbgemm / x86 kernels):
   smaller AND faster on a CPU. ``qconfig_spec`` is a set of module types ({nn.Linear}) or a dict
   {module name: qconfig} (``torch.ao.quantization.default_dynamic_qconfig``) for a chosen subset. Leave
   embeddings and LayerNorm alone. torch 2.13 marks torch.ao's eager quantisation deprecated (a warning);
   it still works, and torchao (its successor) is not installed in the grader.

Quantise models in eval mode (dropout off) and out of place or in place, as you like; the grader checks the
result. The packed weights of a dynamic layer are not ``parameters()``: the grader measures a model's size
from the state dict you save with ``torch.save(module.state_dict(), path)`` (the file's bytes), never from
``sum(p.numel())``. It times your float and quantised models itself, interleaved, on the same inputs.

Models: ``model_dir`` is a Hugging Face folder (``encoder-small``: a MiniLM BERT encoder; ``causal-lm-small``:
SmolLM2-135M, a Llama whose ``lm_head`` shares the token-embedding matrix). Load with
``AutoModel`` (encoder) or ``AutoModelForCausalLM`` (causal LM), ``dtype=torch.float32``, offline.
"""

from __future__ import annotations

import torch
from torch import nn


def quantize_per_channel_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 quantisation of a 2-D weight (see the module docstring).

    Args:
        weight: (out_features, in_features), any float dtype.

    Returns:
        (q, scale): q int8 (out_features, in_features) in [-127, 127]; scale float32 (out_features,), > 0.

    Raises:
        ValueError: when ``weight`` is not a 2-D floating-point tensor.
    """
    raise NotImplementedError


def dequantize_per_channel(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 (out_features, in_features): q * scale[:, None]."""
    raise NotImplementedError


class Int8WeightOnlyLinear(nn.Module):
    """A linear layer holding int8 weights and per-channel scales (no float copy of the weight).

    Built from a float weight (out_features, in_features) and an optional bias (out_features,).
    forward(x): (..., in_features) -> (..., out_features) in x's float dtype, with the dequantised weight.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        raise NotImplementedError

    @classmethod
    def from_float(cls, linear: nn.Linear) -> Int8WeightOnlyLinear:
        """The int8 version of ``linear``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor | None]:
        """{"weight": q (int8), "scale": float32 (out_features,), "bias": float32 or None}: copies."""
        raise NotImplementedError


def dynamic_linear(weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """y for x through an nn.Linear(weight, bias) quantised with quantize_dynamic (qint8): (..., out), float32.

    quantize_dynamic swaps a model's CHILD modules: a bare nn.Linear passed as the model itself is returned
    unchanged (still float). Wrap it, e.g. in nn.Sequential(layer).
    """
    raise NotImplementedError


class QuantizedModel:
    """A pre-trained model, in float or quantised with int8.

    Args:
        model_dir: a model folder.
        kind: "encoder" (AutoModel) or "causal-lm" (AutoModelForCausalLM).
        mode: "float" (as loaded), "dynamic" (quantize_dynamic, qint8, on every nn.Linear except ``skip``),
            or "weight-only" (every nn.Linear except ``skip`` replaced by your Int8WeightOnlyLinear).
        skip: module names (as named_modules() gives them, e.g. "pooler.dense", "lm_head") left in float.

    Raises:
        ValueError: when kind or mode is not one of the above (before loading anything).
    """

    def __init__(self, model_dir: str, *, kind: str, mode: str, skip: list[str] | tuple[str, ...] = ()) -> None:
        raise NotImplementedError

    def module_types(self) -> dict[str, str]:
        """{module name: "<type's module>.<type's qualname>"} for every named module but the root, e.g.
        "encoder.layer.0.attention.self.query": "torch.ao.nn.quantized.dynamic.modules.linear.Linear"."""
        raise NotImplementedError

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Encoder only: the last hidden states mean-pooled over real tokens, (batch, hidden) float32.

        Raises ValueError for a causal LM."""
        raise NotImplementedError

    def token_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Causal LM only: log p(input_ids[:, t+1] | input_ids[:, :t+1]) for t = 0 .. T-2: (batch, T-1) float32.

        Raises ValueError for an encoder."""
        raise NotImplementedError

    def save_state(self, path: str, module: str = "") -> None:
        """torch.save(model.get_submodule(module).state_dict(), path): what the grader measures the size of.

        ``module`` names a submodule ("" is the whole model); the grader saves parts such as "encoder" or
        "model.layers.0", as files written in the sandbox are limited to 64 MB."""
        raise NotImplementedError
