"""Speed levers of the distillation step, each a recipe option of `SKDConfig` (off by default: the plain step).

- `adapter_dtype: bfloat16`: LoRA adapters compute in bf16 on a bf16 model while their weights stay float32
  master weights, which the optimiser updates (:func:`bf16_adapter_compute`).
- `compile_decoder_layers`: regional `torch.compile` of each decoder layer in place (:func:`compile_decoder_layers`).
- `liger_kernels`: Liger's fused RMSNorm, RoPE and SwiGLU in the Phi-3, Qwen2-VL and Qwen2.5-VL decoders
  (:func:`apply_liger`; needs `liger-kernel` and a CUDA device).
- `length_grouping`: batches of similar token length, image rows apart from text-only rows
  (:func:`with_modality_lengths` feeds transformers' length-grouped sampler).

Activation checkpointing needs no lever here: transformers' own `activation_checkpointing` (off) and
`activation_checkpointing_kwargs: {every_n_layers: N}` (selective) reach the step as they are.
:func:`apply_speedups` is the one hook the trainer calls. Nothing here imports `datasets` or `trl`, so the
GPU check applies the same functions on a bare machine.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import types
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

ADAPTER_DTYPES = ("float32", "bfloat16")
#: Liger's patch function for each backbone whose decoder it fuses (model_type -> function name).
LIGER_PATCHES = {
    "phi3_v": "apply_liger_kernel_to_phi3",
    "qwen2_vl": "apply_liger_kernel_to_qwen2_vl",
    "qwen2_5_vl": "apply_liger_kernel_to_qwen2_5_vl",
}
#: The liger-kernel release the levers were written against (its wheel is pure Python + Triton).
LIGER_VERSION = "0.8.5"
#: Added to an image row's length so that every image row ranks above every text-only row: a batch then holds
#: one kind of row (an image row is hundreds of tokens longer than its text; Phi-3.5-V at 1344 px: ~760).
IMAGE_ROW_LENGTH = 1_000_000
#: The decoder's layer list inside each supported backbone's base model.
DECODER_LAYER_PATHS = ("layers", "language_model.layers")


@dataclass
class AppliedSpeedups:
    """What :func:`apply_speedups` changed (the trainer keeps it as `trainer.speedups`; tests read it).

    Attributes:
        adapter_layers: LoRA layers switched to bf16 computation (0: adapters compute in their own dtype).
        compiled_layers: decoder layers compiled in place.
        liger: the Liger patch function applied, or `None`.
        length_column: the dataset column of modality-aware lengths the sampler groups by, or `None`.
    """

    adapter_layers: int = 0
    compiled_layers: int = 0
    liger: str | None = None
    length_column: str | None = None


def core_model(model: nn.Module) -> nn.Module:
    """The `XVLM2VecModel` inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(core: nn.Module) -> nn.ModuleList:
    """The text decoder's layers of an `XVLM2VecModel` (Phi-3.5-V: `model.layers`; Qwen/LLaVA: `language_model`)."""
    for path in DECODER_LAYER_PATHS:
        found: Any = core.model
        for name in path.split("."):
            found = getattr(found, name, None)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return found
    raise ValueError(f"{type(core.model).__name__} has no decoder layer list at {' or '.join(DECODER_LAYER_PATHS)}")


# ------------------------------------------------------------------------------------------------ bf16 adapters
def _cast_weight_linear(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`nn.Linear.forward` in `self.compute_dtype`: input, weight and bias cast on the fly (the casts of the
    weights are differentiable, so their float32 originals receive the gradients)."""
    dtype = self.compute_dtype
    bias = None if self.bias is None else self.bias.to(dtype)
    return F.linear(x.to(dtype), self.weight.to(dtype), bias)


def bf16_adapter_compute(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> int:
    """Make every LoRA layer of a peft model compute in ``dtype`` while its weights keep their own dtype.

    peft keeps adapters in float32 on a bf16 model and casts each adapted projection's input to float32, then the
    float32 output back: elementwise passes over the full activations, 128 times a step at Phi-3.5-V size. Here the
    input stays in ``dtype`` (peft's `cast_input_dtype_enabled` off) and each `lora_A` / `lora_B` casts its small
    (r x width) weight to ``dtype`` for the product. The float32 weights stay the parameters: autograd returns
    their gradients in float32 and AdamW updates them in float32, so an update of 1e-5 relative to a weight (below
    bf16's 2^-8 resolution) is kept instead of being rounded away. Returns the number of LoRA layers changed.
    """
    from peft.tuners.lora import LoraLayer

    changed = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        module.cast_input_dtype_enabled = False
        for adapters in (module.lora_A, module.lora_B):
            for linear in adapters.values():
                if not isinstance(linear, nn.Linear):
                    raise TypeError(f"adapter_dtype=bfloat16 supports linear LoRA adapters, got {type(linear)}")
                linear.compute_dtype = dtype
                linear.forward = types.MethodType(_cast_weight_linear, linear)
        changed += 1
    if changed == 0:
        raise ValueError("adapter_dtype=bfloat16 needs LoRA adapters (--use_peft); the model has none")
    return changed


# ----------------------------------------------------------------------------------------------- compilation
def compile_decoder_layers(core: nn.Module, backend: str = "inductor", mode: str | None = None) -> int:
    """Compile each decoder layer in place (`nn.Module.compile`): parameter names, the saved state dict and
    checkpointing stay as they are, and the layers share one compiled graph. Returns the number of layers."""
    layers = decoder_layers(core)
    for layer in layers:
        layer.compile(backend=backend, mode=mode)
    return len(layers)


# ------------------------------------------------------------------------------------------------------ Liger
def liger_available() -> bool:
    """True when `liger_kernel` is importable (the levers never install it)."""
    return importlib.util.find_spec("liger_kernel") is not None


def apply_liger(core: nn.Module) -> str:
    """Patch the decoder of ``core`` (an `XVLM2VecModel`) with Liger's RMSNorm, RoPE and SwiGLU kernels.

    Uses Liger's own patch function of the backbone family on the already built base model (its instance
    patching), with the cross-entropy patches off (an embedding model has no LM head). RoPE is patched in the
    transformers module, i.e. for every model of that family in this process. Returns the function's name.
    """
    model_type = core.config.backbone_config.model_type
    if model_type not in LIGER_PATCHES:
        raise ValueError(
            f"liger_kernels: no Liger patch for backbone {model_type!r}; supported: {sorted(LIGER_PATCHES)}"
        )
    if not liger_available():
        raise ValueError(
            "liger_kernels needs liger-kernel, which is not installed: "
            f"pip install --no-deps liger-kernel=={LIGER_VERSION}"
        )
    name = LIGER_PATCHES[model_type]
    patch = getattr(importlib.import_module("liger_kernel.transformers"), name)
    options = {"rope": True, "rms_norm": True, "swiglu": True, "cross_entropy": False}
    options["fused_linear_cross_entropy"] = False
    if model_type == "qwen2_vl":
        options["layer_norm"] = False  # the vision tower's LayerNorm: not the decoder's, left as it is
    patch(model=core.model, **options)
    return name


# ---------------------------------------------------------------------------------------------- length grouping
def modality_length(text_en: str, text_lang: str, image: Any) -> int:
    """Sort key of one parallel row for length grouping: characters of both sides, plus `IMAGE_ROW_LENGTH` when the
    row has an image (so image rows and text-only rows fall into different batches)."""
    return len(text_en) + len(text_lang) + (IMAGE_ROW_LENGTH if image is not None else 0)


def with_modality_lengths(dataset: Any, column: str) -> Any:
    """``dataset`` (a `datasets.Dataset` of parallel rows) with ``column`` holding :func:`modality_length` of each
    row, replacing a column of that name."""
    if column in dataset.column_names:
        dataset = dataset.remove_columns(column)
    return dataset.map(
        lambda en, x, images: {column: [modality_length(*row) for row in zip(en, x, images)]},
        input_columns=["text_en", "text_lang", "image"],
        batched=True,
        desc="length grouping",
    )


# ------------------------------------------------------------------------------------------------------- hook
def apply_speedups(trainer: Any) -> AppliedSpeedups:
    """Apply the recipe's speed levers (`trainer.args`) to `trainer.model` and `trainer.train_dataset`.

    The one hook of `SKDTrainer`, called at the end of its `__init__` (the model is on its device by then). Each
    lever left at its default changes nothing.
    """
    args = trainer.args
    applied = AppliedSpeedups()
    core = core_model(trainer.model)
    if args.adapter_dtype != "float32":
        applied.adapter_layers = bf16_adapter_compute(trainer.model, getattr(torch, args.adapter_dtype))
    if args.liger_kernels:
        if args.device.type != "cuda":
            raise ValueError(f"liger_kernels needs a CUDA device (Triton kernels); training runs on {args.device}")
        applied.liger = apply_liger(core)
    if args.compile_decoder_layers:
        applied.compiled_layers = compile_decoder_layers(core, args.compile_backend, args.compile_mode)
    if args.length_grouping and trainer.train_dataset is not None:
        trainer.train_dataset = with_modality_lengths(trainer.train_dataset, args.length_column_name)
        applied.length_column = args.length_column_name
    if applied != AppliedSpeedups():
        logger.info("speed levers applied: %s", applied)
    return applied
