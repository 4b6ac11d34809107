"""GPU check: xVLM2Vec at Phi-3.5-V size, randomly initialised, trained and encoding on one GPU.

Writes one JSON (``--output``) and prints a table (step time, tokens/s, MFU, HFU, peak memory) of every
phase, in one call meant to fit a short GPU window (``--budget-s``, default 360 s: a phase that would start later
is recorded as skipped). A phase that fails (an out-of-memory error, say) is recorded, and the next one runs:

- ``skd_released``: the released recipe (every weight trained, a separate frozen teacher copy, gradient
  checkpointing of every layer);
- ``skd_lora_self_teacher``: the LoRA recipe as it ships (adapters r=8 on the decoder's fused projections,
  float32 adapters, the teacher is the student with its adapters off, gradient checkpointing of every layer);
- then the LoRA recipe with the speed levers of ``xvlm2vec.training.speedups`` added one at a time
  (``LORA_VARIANTS``): bf16 adapter compute with float32 master weights, checkpointing of one decoder layer in
  two, checkpointing off, regional ``torch.compile`` of the decoder layers, Liger's fused RMSNorm / RoPE /
  SwiGLU (when ``liger_kernel`` is installed and on CUDA), twice the micro-batch, and a corpus-like mix of
  image and text-only rows batched as shuffled vs length-grouped;
- ``encode_texts`` / ``encode_images``: ``XVLM2VecModel.encode`` throughput at batch 32.

Every training phase runs the trainer's own loss (``xvlm2vec.training.loss.DistillationLoss``) on the same batch (per
device 8 pairs, 1344x1344 images) with AdamW and gradient clipping 0.3, and every LoRA phase starts from the same
adapters, so its losses are compared with the shipped LoRA recipe's (``loss_max_rel_drift``: the bf16 drift).

The model is Phi-3.5-vision's shape (Phi-3 mini decoder: hidden 3072, 32 layers, 32 heads,
intermediate 8192, vocabulary 32064; CLIP ViT-L/14-336 tower) in bf16 with sdpa attention, or
flash-attention 2 when ``flash_attn`` is importable. Nothing is downloaded: the weights are random and the
tokenizer is the project's offline one with Phi-3.5's id layout. Only torch, transformers, peft and numpy
are imported (no datasets, trl or evaluate). ``--tiny`` runs the same code on a tiny model on CPU (the test
suite does, so this script cannot rot).

    PYTHONPATH=. python3 benchmarks/gpu_check.py --output gpu_check.json
    PYTHONPATH=. python3 benchmarks/gpu_check.py --tiny --output gpu_check_tiny.json

Model FLOPs of a step (no recomputation counted): the teacher's forward, plus the student's forward and
backward. A forward costs ``2 * linear weights * tokens`` plus ``4 * layers * width * length^2`` of
attention per sequence, for the decoder (real tokens of each row) and the CLIP tower (577 tokens per crop;
its patch convolution on 576), plus the image projection. The backward of full fine-tuning costs twice
the forward; with LoRA only the decoder is back-propagated, once (input gradients; the adapters' own
weight gradients are negligible). ``hfu`` also counts the student forward that gradient checkpointing
recomputes in the backward (the decoder only, with LoRA; the checkpointed fraction of its layers).

Liger on a machine without network: ``pip download liger-kernel==0.8.5 --no-deps`` (a 0.9 MB pure-Python wheel;
its Triton comes with torch) where there is network, take the wheel along, and ``pip install --no-deps
liger_kernel-0.8.5-py3-none-any.whl`` on the GPU machine (docs/performance.md).
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.util
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image
from torch import nn

from modeling_xvlm2vec import XVLM2VecConfig, XVLM2VecModel
from modeling_xvlm2vec.configuration_phi3_v import Phi3VConfig
from xvlm2vec.testing.tiny_phi3_v import tiny_phi3_v_config, tiny_phi3_v_processor
from xvlm2vec.training.collator import ParallelCollator
from xvlm2vec.training.loss import DistillationLoss
from xvlm2vec.training.memory import phi35v_config
from xvlm2vec.training.speedups import (
    apply_liger,
    bf16_adapter_compute,
    compile_decoder_layers,
    core_model,
    decoder_layers,
    liger_available,
    modality_length,
)
from xvlm2vec.training.teacher import Teacher

#: bf16 dense peak (TFLOP/s, no sparsity) of the cards the check is meant for, by name fragment.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0}
#: The LoRA recipe's adapters (recipes/xvlm2vec_phi35v.yaml).
LORA_SETTINGS = {
    "r": 8,
    "lora_alpha": 64,
    "lora_dropout": 0.1,
    "target_modules": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}
#: The released recipe's optimiser settings (docs/training.md).
LEARNING_RATE, MAX_GRAD_NORM = 1e-5, 0.3

_STARTED = time.perf_counter()


def log(message: str) -> None:
    """One progress line, flushed at once (the GPU machine's output is read as it comes)."""
    print(f"[gpu_check {time.perf_counter() - _STARTED:6.1f}s] {message}", flush=True)


# ---------------------------------------------------------------------------------------------- model
def attention_implementation(device: torch.device) -> str:
    """flash_attention_2 on CUDA when the package is importable, else sdpa."""
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def build_model(backbone: Phi3VConfig, device: torch.device, dtype: torch.dtype, attn: str) -> XVLM2VecModel:
    """A randomly initialised XVLM2VecModel built directly on ``device`` in ``dtype``."""
    backbone._attn_implementation = attn
    backbone.text_config._attn_implementation = attn
    backbone.vision_config._attn_implementation = attn
    config = XVLM2VecConfig(backbone_config=backbone)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = XVLM2VecModel(config)
    finally:
        torch.set_default_dtype(previous)
    return model


def linear_weights(module: nn.Module, kind: type[nn.Module] = nn.Linear) -> int:
    """Elements of the weights of ``module``'s ``kind`` layers (linear by default; LoRA adapters excluded)."""
    return sum(
        child.weight.numel()
        for name, child in module.named_modules()
        if isinstance(child, kind) and "lora_" not in name
    )


def forward_flops(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Model FLOPs of one forward of a processed batch: ``decoder`` and ``vision`` (tower + projection)."""
    backbone = core_model(model).model
    text = backbone.config.text_config
    vision = backbone.config.vision_config
    lengths = batch["attention_mask"].sum(-1).double()
    decoder = (
        2 * linear_weights(backbone.layers) * lengths.sum()
        + 4 * text.num_hidden_layers * text.hidden_size * (lengths**2).sum()
    )
    flops = {"decoder": float(decoder), "vision": 0.0}
    if batch.get("image_sizes") is not None:
        embedding = backbone.vision_embed_tokens
        crop = embedding.crop_size
        crops = sum(1 + (int(h) // crop) * (int(w) // crop) for h, w in batch["image_sizes"].tolist())
        patches = (vision.image_size // vision.patch_size) ** 2
        tokens = patches + 1  # the class token
        tower = (
            2 * linear_weights(embedding.img_processor, nn.Conv2d) * patches
            + 2 * linear_weights(embedding.img_processor) * tokens
            + 4 * vision.num_hidden_layers * vision.hidden_size * tokens**2
        )
        image_tokens = int(backbone.image_positions(batch["input_ids"]).sum())
        flops["vision"] = float(crops * tower + 2 * linear_weights(embedding.img_projection) * image_tokens)
    return flops


def step_flops(
    model: nn.Module, batch: dict[str, Any], full_finetuning: bool, recomputed_fraction: float = 1.0
) -> tuple[float, float]:
    """FLOPs of one distillation step: model FLOPs (teacher forward + student forward and backward) and
    hardware FLOPs (plus the forward that gradient checkpointing recomputes in the backward: the student's, or its
    decoder's with LoRA, times the checkpointed fraction of the layers)."""
    teacher = forward_flops(model, batch["teacher_inputs"])
    student = forward_flops(model, batch["student_inputs"])
    forward = sum(teacher.values()) + sum(student.values())
    backward = 2 * sum(student.values()) if full_finetuning else student["decoder"]
    recomputed = recomputed_fraction * (sum(student.values()) if full_finetuning else student["decoder"])
    return forward + backward, forward + backward + recomputed


# ----------------------------------------------------------------------------------------------- data
def synthetic_pairs(count: int, image_size: int, seed: int = 0) -> list[dict[str, Any]]:
    """Parallel rows (English, Italian, shared random image) shaped like the corpus's image rows."""
    generator = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        pixels = generator.integers(0, 256, size=(image_size, image_size, 3), dtype=np.uint8)
        rows.append(
            {
                "id": str(index),
                "text_en": f"<|image_1|>\nRepresent the given image with the following question: "
                f"what is the {index}th "
                "object on the table next to the window?",
                "text_lang": f"<|image_1|>\nRappresenta l'immagine data con la seguente domanda: "
                f"qual è l'oggetto numero "
                f"{index} sul tavolo vicino alla finestra?",
                "image": Image.fromarray(pixels),
            }
        )
    return rows


def text_only(row: dict[str, Any]) -> dict[str, Any]:
    """The same pair without its image (the corpus's text-only rows: the tag removed, no image)."""
    return {
        **row,
        "text_en": row["text_en"].split("\n", 1)[1],
        "text_lang": row["text_lang"].split("\n", 1)[1],
        "image": None,
    }


def mixed_batches(rows: list[dict[str, Any]], batch_size: int, grouped: bool) -> list[list[dict[str, Any]]]:
    """``rows`` (image rows) and their text-only twins in batches of ``batch_size``: shuffled (image and text rows
    alternate, as a random order mixes them) or length-grouped by the training lever's key
    (:func:`xvlm2vec.training.speedups.modality_length`, longest first)."""
    mixed = [row for pair in zip(rows, map(text_only, rows)) for row in pair]
    if grouped:
        mixed.sort(key=lambda row: modality_length(row["text_en"], row["text_lang"], row["image"]), reverse=True)
    return [mixed[start : start + batch_size] for start in range(0, len(mixed), batch_size)]


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every processor batch of a collated batch to ``device``."""
    return {key: value.to(device) if hasattr(value, "to") else value for key, value in batch.items()}


def tokens(batch: dict[str, torch.Tensor]) -> int:
    """Real (unpadded) tokens of a processor batch."""
    return int(batch["attention_mask"].sum())


# ------------------------------------------------------------------------------------------ measuring
def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timings must include it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    """Free cached blocks and restart the peak-memory counter."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    """Peak allocated device memory since the last reset, in GiB (None on CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def timed(step: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA (or CPU allocator) out-of-memory errors."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


class Skipped(Exception):
    """A phase that cannot run here (its lever is not installed, or the time budget is spent): recorded as skipped."""


def run_phase(name: str, results: dict[str, Any], device: torch.device, body: Callable[[], dict[str, Any]]) -> None:
    """Run one phase; record its figures, or why it was skipped, or its out-of-memory / error message, under
    ``results[name]``."""
    log(f"{name}: start")
    reset_memory(device)
    started = time.perf_counter()
    try:
        figures = body()
        figures["status"] = "ok"
    except Skipped as reason:
        figures = {"status": "skipped", "reason": str(reason)}
    except Exception as error:  # noqa: BLE001  (a failed phase is recorded; the next one still runs)
        figures = {
            "status": "oom" if is_out_of_memory(error) else "error",
            "error": f"{type(error).__name__}: {error}"[:2000],
        }
        if figures["status"] == "error":
            figures["traceback"] = traceback.format_exc()[-4000:]
    figures["phase_seconds"] = time.perf_counter() - started
    figures["peak_memory_gib"] = peak_memory_gib(device)
    results[name] = figures
    log(
        f"{name}: {figures['status']} in {figures['phase_seconds']:.1f}s "
        + json.dumps(
            {
                k: v
                for k, v in figures.items()
                if k in ("step_s_median", "tokens_per_s", "mfu", "peak_memory_gib", "rows_per_s", "error", "reason")
            }
        )
    )
    reset_memory(device)


def skd_phase(
    model: nn.Module,
    teacher: Teacher,
    batches: list[dict[str, Any]],
    parameters: list[nn.Parameter],
    args: argparse.Namespace,
    device: torch.device,
    full_finetuning: bool,
    recomputed_fraction: float = 1.0,
) -> dict[str, Any]:
    """Train ``args.warmup + args.steps`` steps, each one optimiser step per batch of ``batches`` in turn; figures
    per batch (a step of the recipe) of the timed ones."""
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=0.0, fused=fused)
    model.train()
    losses: list[torch.Tensor] = []
    loss_fn = DistillationLoss()

    def step() -> None:
        for batch in batches:
            loss = loss_fn(model, teacher, batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())

    try:
        seconds = [elapsed / len(batches) for elapsed in timed(step, device, args.warmup, args.steps)]
    finally:
        optimizer.state.clear()
    median = statistics.median(seconds)
    counted = [step_flops(model, batch, full_finetuning, recomputed_fraction) for batch in batches]
    flops = sum(model_flops for model_flops, _ in counted) / len(batches)
    hardware_flops = sum(hardware for _, hardware in counted) / len(batches)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else None
    student = sum(tokens(batch["student_inputs"]) for batch in batches) / len(batches)
    teacher_tokens = sum(tokens(batch["teacher_inputs"]) for batch in batches) / len(batches)
    padded = sum(batch["student_inputs"]["input_ids"].numel() for batch in batches) / len(batches)
    losses_seen = [float(loss) for loss in losses]
    if not all(np.isfinite(losses_seen)):
        raise FloatingPointError(f"non-finite loss: {losses_seen}")
    return {
        "trainable_parameters": sum(p.numel() for p in parameters),
        "step_s": seconds,
        "step_s_median": median,
        "steps_per_s": 1 / median,
        "pairs_per_step": batches[0]["student_inputs"]["input_ids"].shape[0] // 2,
        "batches_per_step": len(batches),
        "student_tokens_per_step": student,
        "teacher_tokens_per_step": teacher_tokens,
        "padded_student_tokens_per_step": padded,
        "tokens_per_s": student / median,
        "model_tflops_per_step": flops / 1e12,
        "achieved_tflops": flops / median / 1e12,
        "mfu": flops / median / peak if peak else None,
        "hardware_tflops_per_step": hardware_flops / 1e12,
        "hfu": hardware_flops / median / peak if peak else None,
        "recomputed_fraction": recomputed_fraction,
        "losses": losses_seen,
    }


def encode_phase(
    model: XVLM2VecModel,
    texts: list[str] | None,
    images: list[Image.Image] | None,
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    """Throughput of ``model.encode`` at ``args.encode_batch`` on texts or images."""
    count = len(texts if texts is not None else images)
    shapes: list[tuple[int, ...]] = []

    def run() -> None:
        shapes.append(
            model.encode(texts=texts, images=images, batch_size=args.encode_batch, show_progress_bar=False).shape
        )

    seconds = timed(run, device, 1, args.encode_repeats)
    if shapes[-1] != (count, core_model(model).config.hidden_size):
        raise AssertionError(
            f"encode returned {shapes[-1]}, expected ({count}, {core_model(model).config.hidden_size})"
        )
    median = statistics.median(seconds)
    return {"rows": count, "batch_size": args.encode_batch, "seconds": seconds, "rows_per_s": count / median}


# ------------------------------------------------------------------------------------------- LoRA levers
@dataclass(frozen=True)
class Levers:
    """The speed levers of one LoRA phase (the recipe options of ``SKDConfig`` they stand for in brackets).

    Attributes:
        bf16_adapters: adapters compute in bf16, float32 master weights (``adapter_dtype: bfloat16``).
        checkpoint_every: checkpoint one decoder layer in N; 0: none (``activation_checkpointing`` and its
            ``every_n_layers``).
        compile: regional ``torch.compile`` of the decoder layers (``compile_decoder_layers``).
        liger: Liger's RMSNorm / RoPE / SwiGLU in the decoder (``liger_kernels``).
        inputs: which batches a step trains on: ``single`` (the check's batch), ``double`` (twice the pairs),
            ``mixed_shuffled`` / ``mixed_grouped`` (image and text-only rows, batched shuffled or by
            ``length_grouping``'s key).
    """

    bf16_adapters: bool = False
    checkpoint_every: int = 1
    compile: bool = False
    liger: bool = False
    inputs: str = "single"


_FAST = Levers(bf16_adapters=True, checkpoint_every=0, compile=True, liger=True)
#: The phase that adds Liger: skipped where Liger cannot run (later phases then run without it, and say so).
LIGER_PHASE = "lora+bf16+no_checkpoint+compile+liger"
#: The LoRA phases, each adding one lever to the previous one (the last three change the batches of the fastest).
LORA_VARIANTS: list[tuple[str, Levers]] = [
    ("skd_lora_self_teacher", Levers()),
    ("lora+bf16_adapters", Levers(bf16_adapters=True)),
    ("lora+bf16+checkpoint_half", Levers(bf16_adapters=True, checkpoint_every=2)),
    ("lora+bf16+no_checkpoint", Levers(bf16_adapters=True, checkpoint_every=0)),
    ("lora+bf16+no_checkpoint+compile", Levers(bf16_adapters=True, checkpoint_every=0, compile=True)),
    (LIGER_PHASE, _FAST),
    ("lora_fast+batch_x2", replace(_FAST, inputs="double")),
    ("lora_fast+mixed_rows_shuffled", replace(_FAST, inputs="mixed_shuffled")),
    ("lora_fast+mixed_rows_grouped", replace(_FAST, inputs="mixed_grouped")),
]


def liger_version() -> str | None:
    """The installed liger-kernel's version, or None."""
    if not liger_available():
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("liger-kernel")
    except PackageNotFoundError:
        return "unknown"


class LoraRunner:
    """Runs the LoRA phases on one model: fresh adapters (same seed) per phase, its levers applied, and the losses
    compared with the shipped recipe's phase (the first) when the batches are the same."""

    def __init__(
        self, model: XVLM2VecModel, inputs: dict[str, list[dict[str, Any]]], args: argparse.Namespace, device: Any
    ) -> None:
        self.model, self.inputs, self.args, self.device = model, inputs, args, device
        self.liger_applied = False
        self.baseline_losses: list[float] | None = None

    def run(self, levers: Levers, needs_liger: bool = False) -> dict[str, Any]:
        """One LoRA phase with ``levers`` (Liger where it can run); raises :class:`Skipped` when ``needs_liger`` and
        Liger cannot run here."""
        from peft import LoraConfig, get_peft_model

        if levers.liger and not self.liger_applied:
            if self.device.type == "cuda" and liger_available():
                apply_liger(self.model)  # patches the modules in place, for every later phase too
                self.liger_applied = True
            elif needs_liger:
                raise Skipped("Liger needs liger-kernel installed and a CUDA device (Triton kernels)")
        layers = decoder_layers(self.model)
        for index, layer in enumerate(layers):
            layer.gradient_checkpointing = levers.checkpoint_every > 0 and index % levers.checkpoint_every == 0
        torch.manual_seed(0)
        student = get_peft_model(self.model, LoraConfig(task_type="FEATURE_EXTRACTION", **LORA_SETTINGS))
        try:
            if levers.bf16_adapters:
                bf16_adapter_compute(student)
            if levers.compile:
                compile_decoder_layers(self.model, backend=self.args.compile_backend)
            trainable = [p for p in student.parameters() if p.requires_grad]
            fraction = sum(bool(layer.gradient_checkpointing) for layer in layers) / len(layers)
            figures = skd_phase(
                student,
                Teacher(student),
                self.inputs[levers.inputs],
                trainable,
                self.args,
                self.device,
                full_finetuning=False,
                recomputed_fraction=fraction,
            )
        finally:
            for layer in layers:
                layer._compiled_call_impl = None  # compiled again (from the compile cache) by the next phase
                layer.gradient_checkpointing = True
            self.model = student.unload()
        if levers == Levers():
            self.baseline_losses = figures["losses"]
        elif levers.inputs == "single" and self.baseline_losses:
            figures["loss_max_rel_drift"] = max(
                abs(a - b) / max(abs(b), 1e-30) for a, b in zip(figures["losses"], self.baseline_losses)
            )
        return {
            **figures,
            "levers": asdict(replace(levers, liger=levers.liger and self.liger_applied)),
            "lora": LORA_SETTINGS,
            "adapter_dtype": str(trainable[0].dtype).removeprefix("torch."),
        }


def table(phases: dict[str, dict[str, Any]]) -> str:
    """The phases as a Markdown table: step time, tokens/s, MFU, HFU, peak memory, speed-up over the shipped LoRA."""

    def number(value: Any, pattern: str) -> str:
        return "–" if value is None else format(value, pattern)

    baseline = phases.get("skd_lora_self_teacher", {}).get("step_s_median")
    lines = [
        "| phase | status | step s | tokens/s | MFU | HFU | peak GiB | LoRA step / this step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, figures in phases.items():
        if "pairs_per_step" not in figures and figures["status"] == "ok":
            continue  # encode phases: rows/s, not a training step
        step = figures.get("step_s_median")
        ratio = baseline / step if baseline and step else None
        lines.append(
            f"| {name} | {figures['status']} | {number(step, '.3f')} | {number(figures.get('tokens_per_s'), ',.0f')} "
            f"| {number(figures.get('mfu'), '.3f')} | {number(figures.get('hfu'), '.3f')} "
            f"| {number(figures.get('peak_memory_gib'), '.1f')} | {number(ratio, '.2f')} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def environment(device: torch.device, attn: str, args: argparse.Namespace) -> dict[str, Any]:
    """Versions, device and settings, recorded first in the JSON."""
    peft_version = None
    if importlib.util.find_spec("peft") is not None:
        import peft

        peft_version = peft.__version__
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft_version,
        "cuda": torch.version.cuda,
        "device": name,
        "attn_implementation": attn,
        "peak_bf16_tflops": args.peak_tflops,
        "tiny": args.tiny,
        "dtype": str(args.dtype).removeprefix("torch."),
        "batch_pairs": args.batch_size,
        "image_size": args.image_size,
        "gradient_checkpointing": "every layer unless a phase's levers say otherwise",
        "liger_kernel": liger_version(),
        "budget_s": args.budget_s,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "encode_batch": args.encode_batch,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--tiny`` switches the defaults to a CPU-sized run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--tiny", action="store_true", help="tiny model on CPU (the test suite's mode)")
    parser.add_argument("--batch-size", type=int, default=8, help="parallel pairs per step (the paper's per-device 8)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per training phase (default 5; tiny 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; tiny 1)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side of the square training images (default 1344, the released resize; tiny 336)",
    )
    parser.add_argument("--encode-batch", type=int, default=32, help="encode batch size")
    parser.add_argument(
        "--encode-rows", type=int, default=None, help="texts and images to encode (default 128; tiny 8)"
    )
    parser.add_argument("--encode-repeats", type=int, default=3, help="timed encode passes (median reported)")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="bf16 dense peak of the device for MFU (default: from the device name: H100/H200 989)",
    )
    parser.add_argument(
        "--phases",
        nargs="+",
        default=["released", "encode", "lora"],
        choices=["released", "encode", "lora"],
        help="phase groups to run (always in the order released, encode, lora: the LoRA levers stay applied)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=[name for name, _ in LORA_VARIANTS],
        help="LoRA variants to run (default: all, in the order of LORA_VARIANTS)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=360.0,
        help="seconds after which no further phase starts (default 360: with the last phase, at most 8 minutes)",
    )
    parser.add_argument(
        "--compile-backend",
        default=None,
        help="torch.compile backend of the compile lever (default inductor; tiny: aot_eager, as inductor's C++ "
        "code generation takes minutes on a small CPU)",
    )
    args = parser.parse_args(argv)
    args.steps = args.steps if args.steps is not None else (1 if args.tiny else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 2)
    args.image_size = args.image_size or (336 if args.tiny else 1344)
    args.encode_rows = args.encode_rows or (8 if args.tiny else 128)
    args.compile_backend = args.compile_backend or ("aot_eager" if args.tiny else "inductor")
    if args.tiny:
        args.encode_batch = min(args.encode_batch, 4)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the phases and write the JSON (also after a failed phase)."""
    args = parse_args(argv)
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    args.dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if args.peak_tflops is None:
            name = torch.cuda.get_device_name(device)
            args.peak_tflops = next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)
    attn = attention_implementation(device)
    results: dict[str, Any] = {"environment": environment(device, attn, args), "phases": {}}
    log(f"environment: {json.dumps(results['environment'])}")

    def write() -> None:
        results["total_seconds"] = time.perf_counter() - _STARTED
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")

    torch.manual_seed(0)
    processor = tiny_phi3_v_processor(num_crops=4)
    backbone = tiny_phi3_v_config() if args.tiny else phi35v_config()
    started = time.perf_counter()
    model = build_model(backbone, device, args.dtype, attn)
    model.set_processor(processor)
    results["model"] = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_s": time.perf_counter() - started,
        "decoder_linear_weights": linear_weights(model.model.layers),
        "vision_linear_weights": linear_weights(model.model.vision_embed_tokens),
    }
    log(f"model: {results['model']}")
    collator = ParallelCollator(model.prepare_inputs, fused=True, bad_rows="error")
    batch = to_device(collator(synthetic_pairs(args.batch_size, args.image_size)), device)
    results["batch"] = {
        "student_shape": list(batch["student_inputs"]["input_ids"].shape),
        "teacher_shape": list(batch["teacher_inputs"]["input_ids"].shape),
    }
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    write()

    def phase(name: str, body: Callable[[], dict[str, Any]]) -> None:
        """Run a phase within the budget and write the JSON after it."""

        def within_budget() -> dict[str, Any]:
            if time.perf_counter() - _STARTED > args.budget_s:
                raise Skipped(f"time budget of {args.budget_s:.0f} s spent")
            return body()

        run_phase(name, results["phases"], device, within_budget)
        write()

    if "released" in args.phases:

        def released() -> dict[str, Any]:
            model.requires_grad_(True)
            teacher = copy.deepcopy(model).requires_grad_(False).eval()
            try:
                return skd_phase(
                    model,
                    Teacher(model, teacher),
                    [batch],
                    list(model.parameters()),
                    args,
                    device,
                    full_finetuning=True,
                )
            finally:
                del teacher
                model.zero_grad(set_to_none=True)
                model.requires_grad_(False)

        phase("skd_released", released)
    if "encode" in args.phases:
        model.eval()
        texts = [row["text_en"].split("\n", 1)[1] for row in synthetic_pairs(args.encode_rows, 8, seed=1)]
        generator = np.random.default_rng(2)
        images = [
            Image.fromarray(generator.integers(0, 256, size=(480, 640, 3), dtype=np.uint8))
            for _ in range(args.encode_rows)
        ]
        phase("encode_texts", lambda: encode_phase(model, texts, None, args, device))
        phase("encode_images", lambda: encode_phase(model, None, images, args, device))
    if "lora" in args.phases:
        rows = synthetic_pairs(args.batch_size, args.image_size)
        inputs = {
            "single": [batch],
            "double": [to_device(collator(rows + synthetic_pairs(args.batch_size, args.image_size, seed=1)), device)],
            "mixed_shuffled": [
                to_device(collator(part), device) for part in mixed_batches(rows, args.batch_size, grouped=False)
            ],
            "mixed_grouped": [
                to_device(collator(part), device) for part in mixed_batches(rows, args.batch_size, grouped=True)
            ],
        }
        lora_runner = LoraRunner(model, inputs, args, device)
        for name, levers in LORA_VARIANTS:
            if args.variants is None or name in args.variants:
                phase(name, lambda levers=levers, name=name: lora_runner.run(levers, needs_liger=name == LIGER_PHASE))
    results["table"] = table(results["phases"])
    write()
    print(results["table"], flush=True)
    failed = [name for name, phase in results["phases"].items() if phase["status"] not in ("ok", "skipped")]
    log(
        f"done in {results['total_seconds']:.1f}s; wrote {args.output}"
        + (f"; failed phases: {failed}" if failed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
