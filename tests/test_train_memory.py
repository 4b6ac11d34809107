"""The memory table's parameter counts: checked against a hand count of Phi-3.5-V's decoder layer, a real
(materialised) tiny model and the LoRA parameters peft really adds; the per-GPU split of each state."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model

from xvlm2vec.training.memory import (
    NO_SPLIT_WRAP,
    PHI3_LORA_TARGETS,
    count_parameters,
    full_finetuning_memory,
    lora_memory,
    phi35v_config,
)


def test_phi35v_decoder_layer_count_by_hand() -> None:
    hidden, inter = 3072, 8192
    # qkv (3 x 3072 out), o, gate_up (2 x 8192 out), down; two RMSNorm weights; no biases
    layer = hidden * 3 * hidden + hidden * hidden + hidden * 2 * inter + inter * hidden + 2 * hidden
    counts = count_parameters(phi35v_config())
    assert counts.layer == layer == 113_252_352
    assert counts.root == counts.total - 32 * layer
    assert counts.lora == 8 * 32 * (
        (hidden + 3 * hidden) + (hidden + hidden) + (hidden + 2 * inter) + (inter + hidden)
    )


def test_counts_match_a_materialised_model_and_peft(tiny_models) -> None:
    model, _ = tiny_models("phi3_v")
    config = model.config.backbone_config
    counts = count_parameters(config, NO_SPLIT_WRAP, lora_r=4)
    assert counts.total == sum(p.numel() for p in model.parameters())
    wrapped = [m for m in model.modules() if type(m).__name__ in NO_SPLIT_WRAP]
    assert counts.root == counts.total - sum(p.numel() for m in wrapped for p in m.parameters())
    from modeling_xvlm2vec import XVLM2VecConfig, XVLM2VecModel

    torch.manual_seed(0)
    fresh = XVLM2VecModel(XVLM2VecConfig(backbone_config=config))
    peft_model = get_peft_model(fresh, LoraConfig(r=4, target_modules=list(PHI3_LORA_TARGETS)))
    assert counts.lora == sum(p.numel() for name, p in peft_model.named_parameters() if "lora_" in name)


def test_sharded_states_divide_by_the_gpus_the_separate_teacher_does_not() -> None:
    counts = count_parameters(phi35v_config())
    one, sixteen = full_finetuning_memory(counts, 1), full_finetuning_memory(counts, 16)
    assert one.weights == counts.total * 4 and one.optimizer == counts.total * 8  # fp32 master + two fp32 moments
    for name in ("weights", "gradients", "optimizer"):
        assert getattr(one, name) == 16 * getattr(sixteen, name)
    assert one.teacher == sixteen.teacher == counts.total * 2  # a bf16 replica on every GPU
    lora = lora_memory(counts, 16)
    assert lora.teacher == 0 and lora.gradients == counts.lora * 4 / 16
    assert sixteen.total > 7 * lora.total  # the efficient variant's point
