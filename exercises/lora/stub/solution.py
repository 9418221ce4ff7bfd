"""LoRA: fine-tune a Llama-family chat model by training small low-rank adapters, with Hugging Face peft.

LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685) freezes a pre-trained weight W (d_out x d_in) and
learns a low-rank update instead: for an adapted linear layer

    h = W x + b + (alpha / r) * B (A x),      A: (r, d_in), B: (d_out, r), r << min(d_in, d_out)

Only A and B train: r * (d_in + d_out) parameters per adapted layer instead of d_in * d_out. The scaling
is alpha / r (LoRA's; rsLoRA's alpha / sqrt(r) is NOT asked for here). At initialisation A is random and
B = 0, so the adapted model starts exactly as the base model. After training, the update can be MERGED
into the weight, W' = W + (alpha / r) * B A, and the merged layer gives the same outputs with no extra
cost; unmerging subtracts it again. Merging twice must not add the update twice.

peft (https://huggingface.co/docs/peft) does all this for a transformers model:

    from peft import LoraConfig, get_peft_model
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                        task_type="CAUSAL_LM")
    model = get_peft_model(base_model, config)       # base frozen, adapters trainable
    model.get_nb_trainable_parameters()              # (trainable, total)
    model.merge_adapter(); model.unmerge_adapter(); model.disable_adapter() (a context manager)
    model.save_pretrained(folder)                    # adapter_config.json + adapter_model.safetensors
    peft.get_peft_model_state_dict(model), peft.set_peft_model_state_dict(model, state)

``init_lora_weights=False`` makes B random too (not zero): the grader uses it to test merging, which is
an empty test when B = 0.

TWO PARTS.
1. ``LoRALinear``: ONE adapted linear layer, on given weights. Write it by hand (an nn.Module with W, b
   frozen and A, B as parameters) or wrap peft's layer (``peft.inject_adapter_in_model`` on a module
   holding one nn.Linear): both are fine, the checks only call the methods below. Default init as
   peft's: A like nn.Linear's weight (kaiming_uniform_ with a=sqrt(5): uniform in +-1/sqrt(d_in)), B zeros.
2. ``LoraFineTuner``: peft on a whole causal LM, here SmolLM2-135M-Instruct (a Llama) given as a model
   folder, or a tiny random Llama given as {"config": LlamaConfig kwargs, "state_dict": weights}: build
   it with the GIVEN ``load_base_model``. In a Llama, attention has q_proj (d -> heads*head_dim), k_proj
   and v_proj (d -> kv_heads*head_dim: smaller with grouped-query attention) and o_proj; the MLP has
   gate_proj, up_proj, down_proj. ``target_modules`` names which ones get adapters.

INSTRUCTION DATA. A training example is a chat: the user's prompt, the assistant's response. Encode it
with the model's own chat template, and train on the RESPONSE only:
    prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                               add_generation_prompt=True)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = prompt_ids + response_ids;  labels = [-100] * len(prompt_ids) + response_ids
(cut both to max_length). Labels follow transformers' convention: aligned with input_ids, the model
shifts them itself; -100 is ignored by the loss. (With transformers 5, apply_chat_template returns a
dict-like BatchEncoding: take its "input_ids".) The tokenizer is in the model folder.

Everything is fp32 on the CPU, no network: load only from the given folder. Only plain data crosses to
the grader (tensors, lists, dicts, numbers, strings); models stay in the sandbox.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

IGNORE_INDEX = -100


# -- GIVEN: loading the base model. Do not change it. ---------------------------------------------------------
def load_base_model(source: str | dict[str, Any]) -> nn.Module:
    """A LlamaForCausalLM in fp32, eval mode: from a model folder, or from {"config": ..., "state_dict": ...}."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if isinstance(source, str):
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    else:
        model = LlamaForCausalLM(LlamaConfig(**source["config"])).to(torch.float32)
        model.load_state_dict(source["state_dict"])
    return model.eval()


# -- YOUR WORK: one LoRA layer ----------------------------------------------------------------------------------
class LoRALinear:
    """A frozen linear layer y = W x + b plus a LoRA adapter: y = W x + b + (alpha / r) * B (A x).

    Args:
        weight: W, (d_out, d_in) float32; bias: b, (d_out,) or None. Copy them: the layer owns its weights.
        r: the rank (>= 1); alpha: the LoRA alpha (scaling = alpha / r).

    Raises:
        ValueError: when r < 1.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, r: int, alpha: float) -> None:
        raise NotImplementedError

    def scaling(self) -> float:
        """alpha / r."""
        raise NotImplementedError

    def adapter(self) -> dict[str, torch.Tensor]:
        """{"A": (r, d_in), "B": (d_out, r)}: copies of the current adapter weights."""
        raise NotImplementedError

    def set_adapter(self, A: torch.Tensor, B: torch.Tensor) -> None:
        """Load adapter weights. Raises ValueError when A is not (r, d_in) or B not (d_out, r)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> (..., d_out), under no_grad. Merged or not, the same values."""
        raise NotImplementedError

    def trainable_parameter_count(self) -> int:
        """How many parameters train (requires_grad): r * (d_in + d_out), the frozen W and b excluded."""
        raise NotImplementedError

    def backward(self, x: torch.Tensor, grad_output: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Run forward on x and backward with ``grad_output`` (the gradient of some loss w.r.t. the output).

        Returns the .grad of each parameter, None for a parameter that gets none (a frozen one):
        {"A": (r, d_in), "B": (d_out, r), "weight": None, "bias": None}. Clear the gradients before and
        after, so two calls never add up.
        """
        raise NotImplementedError

    def merge(self) -> None:
        """Fold the adapter into the weight: W <- W + (alpha / r) B A. A second merge() does nothing."""
        raise NotImplementedError

    def unmerge(self) -> None:
        """Undo merge(): W <- W - (alpha / r) B A. Does nothing when not merged."""
        raise NotImplementedError

    def weight(self) -> torch.Tensor:
        """A copy of the current (d_out, d_in) base weight: W, or W + (alpha / r) B A while merged."""
        raise NotImplementedError


# -- YOUR WORK: instruction examples ---------------------------------------------------------------------------
def encode_example(tokenizer_dir: str, prompt: str, response: str, max_length: int = 96) -> dict[str, list[int]]:
    """{"input_ids": [...], "labels": [...]} for one chat example (see the module docstring), both cut to
    max_length. Load the tokenizer from ``tokenizer_dir`` once and reuse it (it is slow to load)."""
    raise NotImplementedError


def collate(examples: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad examples into int64 tensors (b, longest): input_ids (pad_token_id), labels (-100),
    attention_mask (1 real, 0 padding). Raises ValueError for an empty list."""
    raise NotImplementedError


# -- YOUR WORK: peft on a causal LM ---------------------------------------------------------------------------
class LoraFineTuner:
    """A base causal LM (``load_base_model(source)``) with peft LoRA adapters on ``target_modules``.

    Args:
        source: a model folder (str) or {"config": ..., "state_dict": ...} (a tiny Llama).
        r, alpha: LoRA rank and alpha; lora_dropout 0.
        target_modules: module names to adapt, e.g. ["q_proj", "v_proj"].
        init: "default" (peft's: B = 0, the model starts as the base) or "random" (init_lora_weights=False:
            B random as well). Seed torch with ``seed`` before building the adapters.
        device: where the model lives and trains ("cuda" under the grader's gpu profile); tensors given to the
            methods are on the CPU (move them), and every tensor returned is on the CPU.

    Raises:
        ValueError: when r < 1, target_modules is empty, or init is neither "default" nor "random".
    """

    def __init__(self, source: str | dict[str, Any], *, r: int = 8, alpha: float = 16,
                 target_modules: list[str] | tuple[str, ...] = ("q_proj", "v_proj"), init: str = "default",
                 seed: int = 0, device: str = "cpu") -> None:
        raise NotImplementedError

    def parameter_counts(self) -> dict[str, int]:
        """{"trainable": adapter parameters, "total": base + adapter parameters} (as peft counts them)."""
        raise NotImplementedError

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The adapter weights only, as ``peft.get_peft_model_state_dict`` names them (copies)."""
        raise NotImplementedError

    def base_state(self) -> dict[str, torch.Tensor]:
        """The base model's weights (no adapter), under the names of the source state_dict: peft renames an
        adapted layer's weight "...q_proj.base_layer.weight"; give it back as "...q_proj.weight"."""
        raise NotImplementedError

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(b, t, vocab) float32 logits with the adapter active, eval mode, no grad."""
        raise NotImplementedError

    def base_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The same with the adapter disabled: the base model's logits."""
        raise NotImplementedError

    def merged_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Merge the adapter into the base weights, compute the logits, unmerge again (the tuner is left as
        it was: later calls see the unmerged model)."""
        raise NotImplementedError

    def grad_names(self, batch: dict[str, torch.Tensor]) -> list[str]:
        """One forward (with batch's labels) and backward; the names (named_parameters) of every parameter
        whose .grad is not None. Clear the gradients afterwards."""
        raise NotImplementedError

    def train(self, batches: list[dict[str, torch.Tensor]], steps: int, lr: float = 2e-3) -> list[float]:
        """Exactly ``steps`` AdamW steps (weight_decay 0) on the trainable parameters, batch ``s % len(batches)``
        at step s (a dict from ``collate``); return each step's loss (Python floats)."""
        raise NotImplementedError

    def save_adapter(self, path: str) -> None:
        """Save the adapter with peft's save_pretrained into the folder ``path`` (not the base model)."""
        raise NotImplementedError

    def load_adapter(self, path: str) -> None:
        """Load adapter weights saved by ``save_adapter`` into this tuner (same config), replacing its own."""
        raise NotImplementedError
