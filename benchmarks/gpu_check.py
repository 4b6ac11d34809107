"""GPU check: xVLM2Vec at Phi-3.5-V size, randomly initialised, trained and encoding on one GPU.

Writes one JSON (``--output``) with, for each phase, its figures or the reason it failed (an
out-of-memory error is recorded, the next phase still runs):

- ``skd_lora_self_teacher``: the LoRA recipe (adapters r=8 on the decoder's fused projections, the
  teacher is the student with its adapters off);
- ``skd_released``: the released recipe (every weight trained, a separate frozen teacher copy);
  both with the trainer's own step (``xvlm2vec.training.step.skd_loss``), per-device batch 8 pairs,
  gradient checkpointing (non-reentrant), AdamW, gradient clipping 0.3: steps/s, tokens/s, peak memory
  and model FLOPs utilisation (MFU) against the card's bf16 dense peak;
- ``encode_texts`` / ``encode_images``: ``XVLM2VecModel.encode`` throughput at batch 32.

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
recomputes in the backward (the decoder only, with LoRA).
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
from xvlm2vec.training.memory import phi35v_config
from xvlm2vec.training.step import skd_loss
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


def core_of(model: nn.Module) -> XVLM2VecModel:
    """The XVLM2VecModel inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def forward_flops(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Model FLOPs of one forward of a processed batch: ``decoder`` and ``vision`` (tower + projection)."""
    backbone = core_of(model).model
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


def step_flops(model: nn.Module, batch: dict[str, Any], full_finetuning: bool) -> tuple[float, float]:
    """FLOPs of one distillation step: model FLOPs (teacher forward + student forward and backward) and
    hardware FLOPs (plus the forward that gradient checkpointing recomputes in the backward)."""
    teacher = forward_flops(model, batch["teacher_inputs"])
    student = forward_flops(model, batch["student_inputs"])
    forward = sum(teacher.values()) + sum(student.values())
    backward = 2 * sum(student.values()) if full_finetuning else student["decoder"]
    recomputed = sum(student.values()) if full_finetuning else student["decoder"]
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


def run_phase(name: str, results: dict[str, Any], device: torch.device, body: Callable[[], dict[str, Any]]) -> None:
    """Run one phase; record its figures, or its out-of-memory / error message, under ``results[name]``."""
    log(f"{name}: start")
    reset_memory(device)
    started = time.perf_counter()
    try:
        figures = body()
        figures["status"] = "ok"
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
                if k in ("step_s_median", "tokens_per_s", "mfu", "peak_memory_gib", "rows_per_s", "error")
            }
        )
    )
    reset_memory(device)


def skd_phase(
    model: nn.Module,
    teacher: Teacher,
    batch: dict[str, Any],
    parameters: list[nn.Parameter],
    args: argparse.Namespace,
    device: torch.device,
    full_finetuning: bool,
) -> dict[str, Any]:
    """Train ``args.warmup + args.steps`` steps on one batch; figures of the timed ones."""
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=0.0, fused=fused)
    model.train()
    losses: list[float] = []

    def step() -> None:
        loss, _, _ = skd_loss(model, teacher, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())

    try:
        seconds = timed(step, device, args.warmup, args.steps)
    finally:
        optimizer.state.clear()
    median = statistics.median(seconds)
    flops, hardware_flops = step_flops(model, batch, full_finetuning)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else None
    student, teacher_tokens = tokens(batch["student_inputs"]), tokens(batch["teacher_inputs"])
    losses_seen = [float(loss) for loss in losses]
    if not all(np.isfinite(losses_seen)):
        raise FloatingPointError(f"non-finite loss: {losses_seen}")
    return {
        "trainable_parameters": sum(p.numel() for p in parameters),
        "step_s": seconds,
        "step_s_median": median,
        "steps_per_s": 1 / median,
        "pairs_per_step": batch["student_inputs"]["input_ids"].shape[0] // 2,
        "student_tokens_per_step": student,
        "teacher_tokens_per_step": teacher_tokens,
        "padded_student_tokens_per_step": int(batch["student_inputs"]["input_ids"].numel()),
        "tokens_per_s": student / median,
        "model_tflops_per_step": flops / 1e12,
        "achieved_tflops": flops / median / 1e12,
        "mfu": flops / median / peak if peak else None,
        "hardware_tflops_per_step": hardware_flops / 1e12,
        "hfu": hardware_flops / median / peak if peak else None,
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
    if shapes[-1] != (count, core_of(model).config.hidden_size):
        raise AssertionError(f"encode returned {shapes[-1]}, expected ({count}, {core_of(model).config.hidden_size})")
    median = statistics.median(seconds)
    return {"rows": count, "batch_size": args.encode_batch, "seconds": seconds, "rows_per_s": count / median}


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
        "gradient_checkpointing": True,
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
        default=["lora", "released", "encode"],
        choices=["lora", "released", "encode"],
        help="phases to run, in this order",
    )
    args = parser.parse_args(argv)
    args.steps = args.steps if args.steps is not None else (1 if args.tiny else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 2)
    args.image_size = args.image_size or (336 if args.tiny else 1344)
    args.encode_rows = args.encode_rows or (8 if args.tiny else 128)
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

    if "lora" in args.phases:
        from peft import LoraConfig, get_peft_model

        def lora() -> dict[str, Any]:
            nonlocal model
            student = get_peft_model(model, LoraConfig(task_type="FEATURE_EXTRACTION", **LORA_SETTINGS))
            try:
                trainable = [p for p in student.parameters() if p.requires_grad]
                return {
                    **skd_phase(student, Teacher(student), batch, trainable, args, device, full_finetuning=False),
                    "lora": LORA_SETTINGS,
                    "adapter_dtype": str(trainable[0].dtype).removeprefix("torch."),
                }
            finally:
                model = student.unload()

        run_phase("skd_lora_self_teacher", results["phases"], device, lora)
        write()
    if "released" in args.phases:

        def released() -> dict[str, Any]:
            model.requires_grad_(True)
            teacher = copy.deepcopy(model).requires_grad_(False).eval()
            try:
                return skd_phase(
                    model, Teacher(model, teacher), batch, list(model.parameters()), args, device, full_finetuning=True
                )
            finally:
                del teacher
                model.zero_grad(set_to_none=True)

        run_phase("skd_released", results["phases"], device, released)
        write()
    if "encode" in args.phases:
        model.eval()
        texts = [row["text_en"].split("\n", 1)[1] for row in synthetic_pairs(args.encode_rows, 8, seed=1)]
        generator = np.random.default_rng(2)
        images = [
            Image.fromarray(generator.integers(0, 256, size=(480, 640, 3), dtype=np.uint8))
            for _ in range(args.encode_rows)
        ]
        run_phase("encode_texts", results["phases"], device, lambda: encode_phase(model, texts, None, args, device))
        write()
        run_phase("encode_images", results["phases"], device, lambda: encode_phase(model, None, images, args, device))
    write()
    failed = [name for name, phase in results["phases"].items() if phase["status"] != "ok"]
    log(
        f"done in {results['total_seconds']:.1f}s; wrote {args.output}"
        + (f"; failed phases: {failed}" if failed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
