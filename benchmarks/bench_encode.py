"""Benchmark ``XVLM2VecModel.encode``: batching and sorting speed-ups, achieved FLOP/s against the matmul ceiling.

Every figure is a ratio of two timings taken in the same round; rounds repeat the measurements in a
rotating order (so load drift on a shared machine hits every measurement alike) and the median over
rounds is reported with its spread (min and max). Measured per round:

1. the ceiling: float32 matmul FLOP/s (best of three 2048x2048 products);
2. on the tiny test model: inputs/s of batched ``encode`` (length-sorted) vs unsorted batch size 1;
3. on a small config (hidden 512, MLP 2048, 8 layers, real-length texts): ``encode`` with length-sorted
   batches (what ``encode`` does) vs the same batch size on consecutive, unsorted chunks, and the
   achieved FLOP/s of the sorted run (FLOPs counted analytically over real tokens, so padding counts as
   waste) as a fraction of the round's ceiling;
4. the prefetching pipeline: images/s of ``encode`` on JPEG files (1000x750, decoded by ``encode``) with
   Phi-3.5-V's own image processor at ``num_crops`` 4 (HD transform, five 336x336 crops: as heavy per image
   as the real model's) in front of the tiny Phi-3.5-V model (whose 336-pixel vision tower costs about as
   much per image), with ``num_workers`` 0 (today's: load, process, run, one after the other) and
   ``--workers`` threads preparing the next batches; the embeddings of both are compared bitwise;
5. the same with a simulated accelerator: the forward replaced by a wait of ``--device-s-per-image`` seconds per
   image that uses no CPU (as a GPU forward leaves the CPU free), so the figure shows how much of the CPU-side
   preparation the pipeline hides when the model does not compete with it for cores.

Torch runs one thread by default: on a shared machine extra threads wait on each other at every
operator and the timings scatter (``--threads`` to change).

    python benchmarks/bench_encode.py [--texts 128] [--rounds 5] [--only-pipeline] [--output bench_encode.json]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from figures import save_figures  # benchmarks/figures.py: the script's folder is on sys.path
from PIL import Image

from xvlm2vec.testing.tiny_model import build_tiny_model

WORDS = (
    "the a red blue green small large circle square triangle on next to under above picture image caption "
    "il la rosso blu verde piccolo grande cerchio quadrato triangolo sopra sotto immagine didascalia "
    "el rojo azul verde pequeño grande círculo cuadrado triángulo imagen leyenda le rouge bleu petit carré "
    "der die das rot blau grün klein groß Kreis Quadrat Dreieck Bild Beschreibung neben über unter"
).split()


def sentences(count: int, seed: int = 0, min_words: int = 8, max_words: int = 60) -> list[str]:
    """Caption-like texts of realistic, varied lengths."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))) + "." for _ in range(count)]


def matmul_ceiling(size: int = 2048, repeats: int = 3) -> float:
    """Best float32 matmul FLOP/s over ``repeats`` products of two ``size`` x ``size`` matrices."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def decoder_flops(config, token_counts: list[int]) -> float:
    """Forward FLOPs of the text decoder over real tokens (matmuls + attention scores and values)."""
    text = config.backbone_config.text_config
    hidden, inter, layers = text.hidden_size, text.intermediate_size, text.num_hidden_layers
    head_dim = hidden // text.num_attention_heads
    kv = text.num_key_value_heads * head_dim
    per_token = 2 * hidden * (hidden + 2 * kv) + 2 * hidden * hidden + 2 * 3 * hidden * inter
    total = 0.0
    for tokens in token_counts:
        attention = 2 * 2 * tokens * tokens * hidden / 2  # causal: half of QK^T and AV
        total += layers * (tokens * per_token + attention)
    return total


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def padded_tokens(token_counts: list[int], batch_size: int) -> int:
    """Tokens a run processes when each batch pads to its longest row."""
    return sum(
        max(token_counts[i : i + batch_size]) * len(token_counts[i : i + batch_size])
        for i in range(0, len(token_counts), batch_size)
    )


def jpeg_files(count: int, folder: Path, size: tuple[int, int] = (1000, 750)) -> list[str]:
    """``count`` seeded noisy photos-sized JPEG files (noise compresses badly: a realistic decode cost)."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
        path = folder / f"{index:04d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return paths


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of per-round values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=128, help="texts per measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median and spread reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every measurement")
    parser.add_argument(
        "--images", type=int, default=96, help="JPEG files per pipeline measurement (24 batches: a full pipeline)"
    )
    parser.add_argument("--image-batch-size", type=int, default=4, help="encode batch size of the pipeline runs")
    parser.add_argument("--workers", type=int, default=2, help="num_workers of the pipeline run")
    parser.add_argument("--only-pipeline", action="store_true", help="measure the prefetching pipeline only")
    parser.add_argument(
        "--device-s-per-image",
        type=float,
        default=0.1,
        help="seconds per image of the simulated accelerator's forward (a wait that uses no CPU)",
    )
    parser.add_argument("--output", type=Path, default=None, help="write the figures to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the rounds and print/write the per-round ratios' medians and spreads."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    texts = sentences(args.texts)
    size = args.batch_size
    phi3v, _ = build_tiny_model("phi3_v")
    paths = jpeg_files(args.images, Path(tempfile.mkdtemp(prefix="bench_encode_")))
    pipeline = {
        workers: (lambda w=workers: phi3v.encode(images=paths, batch_size=args.image_batch_size, num_workers=w))
        for workers in (0, args.workers)
    }
    same = np.array_equal(pipeline[0](), pipeline[args.workers]())  # warm-up, and the equality check
    simulated, _ = build_tiny_model("phi3_v")

    def device_forward(batch, normalize: bool = True) -> torch.Tensor:
        time.sleep(args.device_s_per_image * batch["input_ids"].shape[0])
        return torch.zeros(batch["input_ids"].shape[0], 8)  # the width does not matter here

    simulated.embed_batch = device_forward
    measurements: dict[str, Callable[[], object]] = {
        "pipeline_workers0": pipeline[0],
        "pipeline_workers": pipeline[args.workers],
        "simulated_device_workers0": lambda: simulated.encode(images=paths, batch_size=args.image_batch_size),
        "simulated_device_workers": lambda: simulated.encode(
            images=paths, batch_size=args.image_batch_size, num_workers=args.workers
        ),
    }
    flops = 0.0
    if not args.only_pipeline:
        tiny, _ = build_tiny_model("qwen2_vl")
        small, processor = build_tiny_model("qwen2_vl", hidden=512, intermediate=2048, layers=8, vocab_size=2000)
        for model in (tiny, small):
            model.encode(texts[:size], batch_size=size)  # warm-up
        token_counts = [len(ids) for ids in processor.tokenizer(texts)["input_ids"]]
        flops = decoder_flops(small.config, token_counts)
        measurements |= {
            "ceiling": matmul_ceiling,
            "tiny_batched": lambda: tiny.encode(texts, batch_size=size),
            "tiny_batch1": lambda: [tiny.encode([text], batch_size=1) for text in texts],
            "small_sorted": lambda: small.encode(texts, batch_size=size),
            "small_unsorted": lambda: [
                small.encode(texts[i : i + size], batch_size=size) for i in range(0, len(texts), size)
            ],
        }
    rounds: list[dict[str, float]] = []
    names = list(measurements)
    for index in range(args.rounds):
        shift = index % len(names)
        taken = {}
        for name in names[shift:] + names[:shift]:
            taken[name] = measurements[name]() if name == "ceiling" else seconds(measurements[name])
        rounds.append(taken)

    per_round = {
        "pipeline_speedup": [r["pipeline_workers0"] / r["pipeline_workers"] for r in rounds],
        "pipeline_workers0_images_per_s": [args.images / r["pipeline_workers0"] for r in rounds],
        "pipeline_workers_images_per_s": [args.images / r["pipeline_workers"] for r in rounds],
        "simulated_device_speedup": [r["simulated_device_workers0"] / r["simulated_device_workers"] for r in rounds],
        "simulated_device_workers0_images_per_s": [args.images / r["simulated_device_workers0"] for r in rounds],
        "simulated_device_workers_images_per_s": [args.images / r["simulated_device_workers"] for r in rounds],
    }
    results: dict = {
        "settings": {
            "texts": args.texts,
            "batch_size": size,
            "rounds": args.rounds,
            "torch_threads": torch.get_num_threads(),
            "pipeline": {
                "images": args.images,
                "batch_size": args.image_batch_size,
                "num_workers": args.workers,
                "image_size": [1000, 750],
                "processor": "Phi3VImageProcessor, num_crops 4",
                "model": "tiny phi3_v (hidden 64, 2 layers, 336-pixel CLIP tower)",
                "simulated_device_s_per_image": args.device_s_per_image,
            },
        },
        "pipeline_embeddings_bitwise_equal": bool(same),
    }
    if not args.only_pipeline:
        per_round |= {
            "tiny_batched_over_batch1": [r["tiny_batch1"] / r["tiny_batched"] for r in rounds],
            "small_sorted_over_unsorted": [r["small_unsorted"] / r["small_sorted"] for r in rounds],
            "small_fraction_of_ceiling": [flops / r["small_sorted"] / r["ceiling"] for r in rounds],
            "small_sorted_gflops": [flops / r["small_sorted"] / 1e9 for r in rounds],
            "matmul_ceiling_gflops": [r["ceiling"] / 1e9 for r in rounds],
            "tiny_batched_inputs_per_s": [len(texts) / r["tiny_batched"] for r in rounds],
        }
        sorted_counts = sorted(token_counts, reverse=True)
        results["small_tokens"] = {
            "real": sum(token_counts),
            "padded_sorted": padded_tokens(sorted_counts, size),
            "padded_unsorted": padded_tokens(token_counts, size),
        }
        # best-of: each measurement's least disturbed round, the steadiest figure on a loaded machine
        results["best_of"] = {
            "small_sorted_over_unsorted": min(r["small_unsorted"] for r in rounds)
            / min(r["small_sorted"] for r in rounds),
            "small_fraction_of_ceiling": flops
            / min(r["small_sorted"] for r in rounds)
            / max(r["ceiling"] for r in rounds),
            "tiny_batched_over_batch1": min(r["tiny_batch1"] for r in rounds) / min(r["tiny_batched"] for r in rounds),
        }
    results |= {
        "per_round": per_round,
        "summary": {name: spread(values) for name, values in per_round.items()},
        "load_average_end": os.getloadavg(),
    }
    print(
        f"{args.rounds} interleaved rounds, {torch.get_num_threads()} torch thread(s); median [min, max] over rounds"
    )
    for name, entry in results["summary"].items():
        print(f"{name:<30}{entry['median']:>10.3f}  [{entry['min']:.3f}, {entry['max']:.3f}]")
    print(f"pipeline embeddings bitwise equal: {same}; load average {os.getloadavg()}")
    if not args.only_pipeline:
        print("best-of rounds: " + ", ".join(f"{name} {value:.3f}" for name, value in results["best_of"].items()))
        tokens = results["small_tokens"]
        print(
            f"small config tokens: {tokens['real']} real, {tokens['padded_sorted']} padded sorted, "
            f"{tokens['padded_unsorted']} padded unsorted"
        )
    return save_figures(results, args.output)


if __name__ == "__main__":
    main()
