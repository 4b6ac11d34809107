"""Model-state memory per GPU of the Phi-3.5-V recipes, computed from parameter counts and byte sizes.

Parameters are counted on the real model class, built on the meta device from Phi-3.5-vision-instruct's shapes
(no weights needed). The byte sizes follow what accelerate does under FSDP with `mixed_precision: bf16` and
weights loaded in bfloat16: trainable parameters are upcast to float32 master weights (4 bytes) with float32
gradients (4) and AdamW's two float32 moments (8); frozen parameters stay bfloat16 (2). Sharded states are
divided by the number of GPUs. A separate teacher is prepared in evaluation mode, so it is a full bfloat16
replica on every GPU. FSDP also gathers the unsharded bfloat16 parameters of the root unit (what no wrapped
layer holds) and of two wrapped layers at a time (the current one and the prefetched next one).
Activations are not included: they depend on the sequence lengths (see docs/training.md).

    python -m xvlm2vec.training.memory        # the table of docs/training.md
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from modeling_xvlm2vec.configuration_phi3_v import Phi3VConfig

GIB = 1024**3
FP32, BF16, ADAM_FP32 = 4, 2, 8
#: LoRA targets of recipes/xvlm2vec_phi35v.yaml.
PHI3_LORA_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")


def phi35v_config() -> Phi3VConfig:
    """Phi-3.5-vision-instruct's shapes (decoder 3072 wide, 32 layers, vocabulary 32064; CLIP ViT-L/14-336)."""
    text = {
        "vocab_size": 32064,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 131072,
        "sliding_window": 262144,
        "pad_token_id": 32000,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    return Phi3VConfig(text_config=text)


#: FSDP wrap classes: the released accelerate config (decoder layers) and accelerate_configs/fsdp*.yaml (the
#: model's `_no_split_modules`: decoder layers and CLIP encoder layers).
RELEASED_WRAP = ("Phi3DecoderLayer",)
NO_SPLIT_WRAP = ("Phi3DecoderLayer", "CLIPEncoderLayer")


@dataclass(frozen=True)
class ParameterCounts:
    """Parameter counts: all of them, the largest wrapped unit, the root unit (outside every wrapped unit), LoRA's."""

    total: int
    layer: int
    root: int
    lora: int


def count_parameters(
    config: Phi3VConfig,
    wrap: Sequence[str] = RELEASED_WRAP,
    lora_r: int = 8,
    lora_targets: Sequence[str] = PHI3_LORA_TARGETS,
) -> ParameterCounts:
    """Count the parameters of an XVLM2Vec model over `config`, built on the meta device.

    `wrap` names the FSDP wrap classes (the root unit holds every parameter outside them); `lora` is what LoRA
    of rank `lora_r` adds on the `nn.Linear` modules whose name ends with one of `lora_targets`:
    `r * (in + out)` each, as peft does.
    """
    from modeling_xvlm2vec import XVLM2VecConfig, XVLM2VecModel

    with torch.device("meta"):
        model = XVLM2VecModel(XVLM2VecConfig(backbone_config=config))
    total = sum(p.numel() for p in model.parameters())
    units = [sum(p.numel() for p in m.parameters()) for m in model.modules() if type(m).__name__ in wrap]
    if not units:
        raise ValueError(f"the model has no {list(wrap)} modules to wrap")
    lora = sum(
        lora_r * (module.in_features + module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in lora_targets
    )
    return ParameterCounts(total=total, layer=max(units), root=total - sum(units), lora=lora)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per GPU of each model state of a recipe."""

    weights: float
    gradients: float
    optimizer: float
    teacher: float
    gathered: float

    @property
    def total(self) -> float:
        """All model states together, in bytes."""
        return self.weights + self.gradients + self.optimizer + self.teacher + self.gathered

    def gib(self) -> dict[str, float]:
        """Every state and the total in GiB, rounded to 2 decimals."""
        fields = ("weights", "gradients", "optimizer", "teacher", "gathered", "total")
        return {name: round(getattr(self, name) / GIB, 2) for name in fields}


def full_finetuning_memory(counts: ParameterCounts, gpus: int) -> MemoryEstimate:
    """The released recipe: every weight trains (sharded float32 states), a separate bfloat16 teacher per GPU."""
    return MemoryEstimate(
        weights=counts.total * FP32 / gpus,
        gradients=counts.total * FP32 / gpus,
        optimizer=counts.total * ADAM_FP32 / gpus,
        teacher=counts.total * BF16,
        gathered=(counts.root + 2 * counts.layer) * BF16,
    )


def lora_memory(counts: ParameterCounts, gpus: int) -> MemoryEstimate:
    """The LoRA recipe: frozen bfloat16 base sharded, float32 adapters and their states, the self-teacher (no copy)."""
    return MemoryEstimate(
        weights=(counts.total * BF16 + counts.lora * FP32) / gpus,
        gradients=counts.lora * FP32 / gpus,
        optimizer=counts.lora * ADAM_FP32 / gpus,
        teacher=0.0,
        gathered=(counts.root + 2 * counts.layer) * BF16,
    )


def table(gpus: int = 16) -> str:
    """Markdown table of both recipes for Phi-3.5-V on `gpus` GPUs (GiB per GPU)."""
    config = phi35v_config()
    released, lora = count_parameters(config, RELEASED_WRAP), count_parameters(config, NO_SPLIT_WRAP)
    rows = [
        ("released (full FT + separate teacher)", full_finetuning_memory(released, gpus)),
        ("LoRA r 8 + self-teacher", lora_memory(lora, gpus)),
    ]
    lines = [
        f"Phi-3.5-V: {released.total:,} parameters ({released.layer:,} per decoder layer; root unit "
        f"{released.root:,} with decoder-layer wrapping, {lora.root:,} with CLIP layers wrapped too), LoRA r 8 "
        f"adds {lora.lora:,}; FSDP full shard over {gpus} GPUs; GiB per GPU",
        "",
        "| recipe | weights | gradients | AdamW states | teacher | gathered (bf16) | model states total |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, estimate in rows:
        g = estimate.gib()
        cells = " | ".join(
            f"{g[key]:.2f}" for key in ("weights", "gradients", "optimizer", "teacher", "gathered", "total")
        )
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
