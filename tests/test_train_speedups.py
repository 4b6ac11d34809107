"""Speed levers of the distillation step (xvlm2vec.training.speedups): each reaches the step, and those that run on
CPU leave the result unchanged.

Equality tolerance: losses within 1e-5 relative, saved weights within 1e-5 of each tensor's largest weight (float32 on
CPU). Checkpointing recomputes the same float32 forward, and compiled layers reorder some float32 sums: with inductor,
20 steps ended 2.3e-7 apart at most on weights of ~0.08 (2.9e-6 relative), while the 20 steps themselves move each
adapted tensor by 0.24-0.44 of its largest weight (measured).
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_fixtures import corpus_splits, lora_student, skd_config, write_parallel_corpus
from transformers.trainer_pt_utils import LengthGroupedSampler

from xvlm2vec.testing.tiny_model import build_tiny_model, save_tiny_model
from xvlm2vec.training import speedups
from xvlm2vec.training.collator import ParallelCollator
from xvlm2vec.training.loss import DistillationLoss
from xvlm2vec.training.script import run
from xvlm2vec.training.teacher import Teacher
from xvlm2vec.training.trainer import SKDTrainer

pytestmark = pytest.mark.slow  # make test-slow (CI runs it after make test): minutes on 2 cores

ROOT = Path(__file__).resolve().parents[1]
STEPS = 20
RELATIVE = 1e-5
#: The suite compiles with aot_eager (dynamo capture and AOT autograd, eager kernels): inductor's C++ code generation
#: took 700 s on the shared 2-core machine. Set XVLM2VEC_TEST_COMPILE_BACKEND=inductor to run inductor's kernels.
COMPILE = os.environ.get("XVLM2VEC_TEST_COMPILE_BACKEND", "aot_eager")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("speedups")
    return save_tiny_model("qwen2_vl", base / "tiny", seed=0), write_parallel_corpus(base / "corpus", train=200, dev=4)


def train(inputs: tuple[Path, Path], output_dir: Path, monkeypatch, *overrides: str) -> list[dict]:
    """Run `xvlm2vec train` (tiny recipe, 20 steps of 4 pairs) and return what each training step saw: its loss, the
    decoder layers compiled and checkpointed at that moment, the trainer's applied levers and the batch's rows."""
    seen: list[dict] = []
    original = SKDTrainer.compute_loss

    def spy(self, model, batch, return_outputs=False, num_items_in_batch=None):
        loss = original(self, model, batch, return_outputs, num_items_in_batch)
        if model.training:
            layers = speedups.decoder_layers(speedups.core_model(model))
            seen.append(
                {
                    "loss": float(loss),
                    "compiled": sum(layer._compiled_call_impl is not None for layer in layers),
                    "checkpointed": sum(bool(layer.gradient_checkpointing) for layer in layers),
                    "applied": self.speedups,
                    "images": int(batch["teacher_inputs"].get("image_grid_thw", torch.empty(0, 3)).shape[0]),
                    "rows": int(batch["teacher_inputs"]["input_ids"].shape[0]),
                    "padded": int(batch["student_inputs"]["input_ids"].numel()),
                    "sampler": type(self._get_train_sampler()).__name__,
                }
            )
        return loss

    monkeypatch.setattr(SKDTrainer, "compute_loss", spy)
    model_dir, corpus = inputs
    argv = ["--config", str(ROOT / "recipes/tiny_cpu.yaml"), "--model_name_or_path", str(model_dir)]
    argv += ["--dataset_name", str(corpus), "--output_dir", str(output_dir), "--max_steps", str(STEPS)]
    argv += ["--per_device_train_batch_size", "4", "--disable_tqdm", "true", *overrides]
    assert run(argv) == 0
    assert len(seen) == STEPS
    return seen


def assert_same_run(plain: list[dict], fast: list[dict], plain_dir: Path, fast_dir: Path) -> None:
    """The loss of every step within `RELATIVE` of the plain run's, and every saved weight tensor within `RELATIVE` of
    its largest plain weight (elementwise relative differences are meaningless for weights near zero)."""
    for step, (a, b) in enumerate(zip(plain, fast)):
        assert abs(a["loss"] - b["loss"]) <= RELATIVE * abs(a["loss"]), (step, a["loss"], b["loss"])
    left, right = load_file(str(plain_dir / "model.safetensors")), load_file(str(fast_dir / "model.safetensors"))
    assert left.keys() == right.keys()
    for name in left:
        difference = (right[name] - left[name]).abs().max().item()
        assert difference <= RELATIVE * left[name].abs().max().item(), (name, difference)


def test_checkpointing_choice_and_compiled_layers_give_the_plain_losses_and_model(inputs, tmp_path, monkeypatch):
    plain = train(inputs, tmp_path / "plain", monkeypatch, "--activation_checkpointing", "true")
    assert all(step["checkpointed"] == 2 and step["compiled"] == 0 for step in plain)
    losses = [step["loss"] for step in plain]
    assert sum(losses[-5:]) < 0.9 * sum(losses[:5])  # it trains (each step sees new rows, so compare means)
    variants = {
        "selective": (
            ["--activation_checkpointing", "true", "--activation_checkpointing_kwargs", '{"every_n_layers": 2}'],
            {"checkpointed": 1},
        ),
        "off": (["--activation_checkpointing", "false"], {"checkpointed": 0}),
        "compiled": (
            ["--activation_checkpointing", "true", "--compile_decoder_layers", "true", "--compile_backend", COMPILE],
            {"compiled": 2, "checkpointed": 2},
        ),
    }
    for name, (extra, expected) in variants.items():
        fast = train(inputs, tmp_path / name, monkeypatch, *extra)
        for step in fast:  # the lever reached every step
            assert {key: step[key] for key in expected} == expected, name
        assert fast[0]["applied"].compiled_layers == (2 if name == "compiled" else 0)
        assert_same_run(plain, fast, tmp_path / "plain", tmp_path / name)


def test_length_grouping_reaches_the_sampler_and_cuts_padding(inputs, tmp_path, monkeypatch):
    plain = train(inputs, tmp_path / "plain", monkeypatch)
    grouped = train(inputs, tmp_path / "grouped", monkeypatch, "--length_grouping", "true")
    assert grouped[0]["applied"].length_column == "length"
    assert {step["sampler"] for step in grouped} == {LengthGroupedSampler.__name__}
    assert {step["sampler"] for step in plain} != {LengthGroupedSampler.__name__}
    # transformers' sampler sorts megabatches of min(200 // (4 x 4), 50) x 4 = 48 rows (67 of the 200 carry an image):
    # only the batch crossing from image rows to text rows in each of the two megabatches the 20 steps reach mixes
    # them; shuffled batches mix about 4 times in 5.
    mixed = [0 < step["images"] < step["rows"] for step in grouped]
    assert sum(mixed) <= 2, mixed
    assert sum(0 < step["images"] < step["rows"] for step in plain) > sum(mixed)
    assert sum(step["padded"] for step in grouped) < sum(step["padded"] for step in plain)


def test_padding_does_not_change_a_rows_loss(tmp_path):
    """Length grouping only reorders rows: a text row's embeddings are the same padded next to an image row (a
    shuffled batch) as in a batch of text rows (a grouped batch), within 1e-5 relative."""
    model = lora_student()
    collator = ParallelCollator(speedups.core_model(model).prepare_inputs, 64, "error", fused=True)
    train_split, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=6, dev=1))
    rows = [train_split[index] for index in range(6)]  # rows 0 and 3 carry an image
    text_rows = [rows[1], rows[2]]
    teacher = Teacher(model)
    with torch.no_grad():
        mixed = DistillationLoss()(model, teacher, collator([rows[0], *text_rows])).embeddings.as_dict()
        alone = DistillationLoss()(model, teacher, collator(text_rows)).embeddings.as_dict()
    for key in ("teacher_en", "student_en", "student_x"):
        torch.testing.assert_close(mixed[key][1:], alone[key], rtol=RELATIVE, atol=1e-7)


def bf16_lora_student():
    """The tiny LoRA student on a bf16 base model (peft keeps its adapters float32), adapters given a random B."""
    from trl import ModelConfig

    from xvlm2vec.training.models import add_lora

    torch.manual_seed(0)
    model, _ = build_tiny_model("qwen2_vl", seed=0)
    model.to(torch.bfloat16)
    student = add_lora(
        model,
        ModelConfig(
            use_peft=True,
            lora_r=8,
            lora_alpha=16,
            lora_task_type="FEATURE_EXTRACTION",
            lora_target_modules=["q_proj", "v_proj"],
        ),
    )
    for name, parameter in student.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)  # B = 0 would leave A without a gradient on the first step
    return student


def test_bf16_adapters_compute_in_bf16_and_keep_updates_a_bf16_weight_loses(tmp_path):
    student = bf16_lora_student()
    assert speedups.bf16_adapter_compute(student) == 4  # q_proj and v_proj of the two decoder layers
    seen_dtypes = set()
    for module in student.modules():
        if isinstance(module, torch.nn.Linear) and hasattr(module, "compute_dtype"):
            module.register_forward_hook(lambda mod, args, out: seen_dtypes.add((args[0].dtype, out.dtype)))
    collator = ParallelCollator(speedups.core_model(student).prepare_inputs, 64, "error", fused=True)
    train_split, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=4, dev=1))
    batch = collator([train_split[index] for index in range(4)])
    adapters = {name: p for name, p in student.named_parameters() if p.requires_grad}
    assert adapters and all(p.dtype == torch.float32 for p in adapters.values())  # the master weights
    before = {name: p.detach().clone() for name, p in adapters.items()}
    optimizer = torch.optim.AdamW(adapters.values(), lr=1e-5, weight_decay=0.0)
    loss = DistillationLoss()(student, Teacher(student), batch).loss
    loss.backward()
    optimizer.step()
    assert seen_dtypes == {(torch.bfloat16, torch.bfloat16)}  # no float32 casts of the activations
    for name, parameter in adapters.items():
        after = parameter.detach()
        assert after.dtype == torch.float32
        moved = after != before[name]
        assert moved.float().mean() > 0.9, name  # AdamW's first step moves every weight by about lr
        # A bf16 weight would round most of these updates away: for lora_A (|w| ~ 0.1) nearly all.
        lost = after.bfloat16() == before[name].bfloat16()
        if "lora_A" in name:
            assert lost[moved].float().mean() > 0.9, name


def test_bf16_adapters_reach_the_trainer_step_and_need_lora(tmp_path):
    student = bf16_lora_student()
    train_split, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=4, dev=1))
    trainer = SKDTrainer(
        model=student,
        args=skd_config(tmp_path / "out", adapter_dtype="bfloat16", max_steps=1, bf16=False),
        train_dataset=train_split,
    )
    assert trainer.speedups.adapter_layers == 4
    lora_a = next(m for n, m in student.named_modules() if n.endswith("lora_A.default"))
    assert lora_a.compute_dtype == torch.bfloat16 and lora_a.weight.dtype == torch.float32
    seen = []
    lora_a.register_forward_hook(lambda module, args, out: seen.append((args[0].dtype, out.dtype, module.training)))
    trainer.train()
    assert (torch.bfloat16, torch.bfloat16, True) in seen  # the training step ran the adapters in bf16
    model, _ = build_tiny_model("qwen2_vl", seed=0)
    with pytest.raises(ValueError, match="needs LoRA adapters"):
        SKDTrainer(
            model=model,
            args=skd_config(tmp_path / "full", adapter_dtype="bfloat16"),
            train_dataset=train_split,
            teacher_model=build_tiny_model("qwen2_vl", seed=0)[0],
        )


def fake_liger(monkeypatch) -> list[dict]:
    """Install a stand-in `liger_kernel` whose patch functions record their call and wrap the decoder's RMSNorm
    modules with a counting forward (the real kernels need CUDA); returns the records."""
    calls: list[dict] = []

    def patch(name):
        def apply(model=None, **options):
            counter = {"function": name, "model": model, "options": options, "norm_calls": 0}
            for module in model.modules():
                if type(module).__name__.endswith("RMSNorm"):
                    original = module.forward

                    def counted(*args, _original=original, **kwargs):
                        counter["norm_calls"] += 1
                        return _original(*args, **kwargs)

                    module.forward = counted
            calls.append(counter)

        return apply

    package = types.ModuleType("liger_kernel")
    package.__spec__ = types.SimpleNamespace(name="liger_kernel")
    transformers = types.ModuleType("liger_kernel.transformers")
    for name in speedups.LIGER_PATCHES.values():
        setattr(transformers, name, patch(name))
    monkeypatch.setitem(sys.modules, "liger_kernel", package)
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", transformers)
    monkeypatch.setattr(speedups, "liger_available", lambda: True)
    return calls


@pytest.mark.parametrize("backbone", ["qwen2_vl", "qwen2_5_vl", "phi3_v"])
def test_liger_patches_the_decoder_and_reaches_the_step(backbone, monkeypatch, tmp_path):
    calls = fake_liger(monkeypatch)
    model, _ = build_tiny_model(backbone, seed=0)
    assert speedups.apply_liger(model) == speedups.LIGER_PATCHES[backbone]
    (call,) = calls
    assert call["model"] is model.model
    assert call["options"]["rope"] and call["options"]["rms_norm"] and call["options"]["swiglu"]
    assert not call["options"]["cross_entropy"] and not call["options"]["fused_linear_cross_entropy"]
    train_split, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=2, dev=1))
    collator = ParallelCollator(model.prepare_inputs, None, "error", fused=True)
    with torch.no_grad():
        DistillationLoss()(model, Teacher(model, model), collator([train_split[0], train_split[1]]))
    assert call["norm_calls"] > 0  # the patched modules ran in the step


def test_liger_is_refused_without_cuda_or_the_package(tmp_path, monkeypatch):
    train_split, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=2, dev=1))
    with pytest.raises(ValueError, match="liger_kernels needs a CUDA device"):
        SKDTrainer(
            model=lora_student(), args=skd_config(tmp_path / "a", liger_kernels=True), train_dataset=train_split
        )
    monkeypatch.setattr(speedups, "liger_available", lambda: False)
    model, _ = build_tiny_model("qwen2_vl", seed=0)
    with pytest.raises(ValueError, match="pip install --no-deps liger-kernel==0.8.5"):
        speedups.apply_liger(model)
    model, _ = build_tiny_model("llava_next", seed=0)
    with pytest.raises(ValueError, match="no Liger patch for backbone 'llava_next'"):
        speedups.apply_liger(model)


def test_lever_values_are_checked():
    with pytest.raises(ValueError, match="adapter_dtype must be one of"):
        skd_config("unused", adapter_dtype="float16")
    with pytest.raises(ValueError, match="length_grouping uses the group_by_length sampler"):
        skd_config("unused", length_grouping=True, train_sampling_strategy="sequential")
    assert skd_config("unused", length_grouping=True).train_sampling_strategy == "group_by_length"
