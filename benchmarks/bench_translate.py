"""Benchmark ``xvlm2vec translate``: requests/s of the CTranslate2 engine against transformers' ``generate``.

Both engines translate the same packed MMEB-train fixture requests end to end (:func:`translate_subset`:
packing, generation, splitting, rejection, journal) with a tiny random T5 (``varied``: outputs of varied
lengths, some ending on EOS, some at the token limit; :mod:`xvlm2vec.testing.tiny_mt`), on CPU, greedy, with
the same number of threads. Variants, interleaved in a rotating order each round (median and spread over
rounds reported, with the load average):

* ``transformers``: the default engine, batches in row order (as released);
* ``ct2_rows``: CTranslate2 float32, the same batches;
* ``ct2_length``: CTranslate2 float32, batches sorted by packed length (``--engine ctranslate2``'s default);
* ``ct2_int8``: CTranslate2 int8 weights, length-sorted batches.

Every variant's journal is compared with the transformers one, row by row: ``differing_rows`` counts rows
whose journal line differs (0 = token-identical outputs; int8 is an approximation and may differ).

    python benchmarks/bench_translate.py [--rows 48] [--rounds 5] [--output results/bench_translate.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from figures import save_figures  # benchmarks/figures.py: the script's folder is on sys.path

from dataset_builders.translate import EngineOptions, load_translator, translate_subset
from xvlm2vec.testing.fixtures import mmeb_train_rows
from xvlm2vec.testing.tiny_mt import tiny_t5

SUBSET, LANG = "OK-VQA", "it"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=48, help="MMEB-train fixture rows (requests) per measurement")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median and spread reported)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of both engines")
    parser.add_argument("--output", type=Path, default=None, help="write the figures to this JSON file")
    return parser.parse_args(argv)


def journal(folder: Path) -> dict[int, dict]:
    """The journal lines of one run, by row id."""
    lines = [json.loads(x) for p in (folder / SUBSET / LANG).glob("part-*.jsonl") for x in p.read_text().splitlines()]
    return {line["id"]: line for line in lines}


def main(argv: list[str] | None = None) -> dict:
    """Run the rounds; print and write requests/s per variant, the ratios to transformers, and output equality."""
    args = parse_args(argv)
    os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_translate_"))
    tiny_t5(work / "t5", end="varied")
    rows = mmeb_train_rows(SUBSET, args.rows)
    cache = work / "ct2_cache"

    def translator(engine: str, compute_type: str = "default"):
        options = EngineOptions(engine, compute_type, cache)
        return load_translator(str(work / "t5"), max_new_tokens=args.max_new_tokens, options=options)

    variants = {
        "transformers": (translator("transformers"), "rows"),
        "ct2_rows": (translator("ctranslate2"), "rows"),
        "ct2_length": (translator("ctranslate2"), "length"),
        "ct2_int8": (translator("ctranslate2", "int8"), "length"),
    }
    for engine, _ in variants.values():  # warm-up: first calls allocate and (torch) import lazily
        engine.translate(["Question: what colour? Answer: red."], LANG)
    names = list(variants)
    rounds, journals = [], {}
    for index in range(args.rounds):
        shift = index % len(names)
        taken = {}
        for name in names[shift:] + names[:shift]:
            engine, order = variants[name]
            out = work / f"round{index}_{name}"
            start = time.perf_counter()
            translate_subset(engine, rows, SUBSET, LANG, out, batch_size=args.batch_size, order=order)
            taken[name] = args.rows / (time.perf_counter() - start)
            journals[name] = journal(out)
        rounds.append(taken)
    reference = journals["transformers"]
    differing = {name: sum(journals[name][i] != reference[i] for i in reference) for name in names}
    ended = sum("truncated" != line.get("rejected") for line in reference.values())
    per_round = {f"{name}_requests_per_s": [r[name] for r in rounds] for name in names}
    per_round |= {f"{name}_over_transformers": [r[name] / r["transformers"] for r in rounds] for name in names[1:]}
    results = {
        "settings": {
            "rows": args.rows,
            "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens,
            "rounds": args.rounds,
            "threads": args.threads,
            "model": "tiny random T5 (xvlm2vec.testing.tiny_mt, end='varied'), CPU, greedy",
            "versions": {
                name: __import__("importlib.metadata").metadata.version(name)
                for name in ("ctranslate2", "transformers", "torch")
            },
        },
        "outputs": {"rows_ended_on_eos": ended, "rows_cut_at_limit": len(reference) - ended},
        "differing_rows": differing,
        "load_average_end": os.getloadavg(),
        "per_round": per_round,
        "summary": {
            name: {"median": statistics.median(v), "min": min(v), "max": max(v)} for name, v in per_round.items()
        },
    }
    print(f"{args.rounds} interleaved rounds, {args.threads} thread(s), load average {os.getloadavg()}")
    for name, entry in results["summary"].items():
        print(f"{name:<36}{entry['median']:>10.2f}  [{entry['min']:.2f}, {entry['max']:.2f}]")
    print(f"rows differing from transformers: {differing}; outputs ended on EOS {ended} / {len(reference)}")
    return save_figures(results, args.output)


if __name__ == "__main__":
    main()
