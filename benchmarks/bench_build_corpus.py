"""Benchmark: build a parallel corpus of N rows (default 10,000) from fixtures, num_proc 1 vs 2.

Writes a release-format fixture (``parallel_shuffled.jsonl``, half the rows with an image), then
times ``build_parallel`` for each ``--num-proc`` value side by side in one run, and prints the
rows/s as JSON plus a table (the speed-up is relative to the first value).

    python benchmarks/bench_build_corpus.py --rows 10000 --num-proc 1 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from datasets.utils.logging import disable_progress_bar
from figures import save_figures  # benchmarks/figures.py: the script's folder is on sys.path

from dataset_builders.parallel import build_parallel
from xvlm2vec.testing.fixtures import write_parallel


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and return its results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="corpus rows")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2], help="num_proc values to compare")
    parser.add_argument("--repeats", type=int, default=1, help="timed builds per value (the best is kept)")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON results here")
    args = parser.parse_args(argv)
    disable_progress_bar()
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        write_parallel(Path(scratch) / "src", rows=args.rows)
        fixture_s = time.perf_counter() - start
        runs = []
        for num_proc in args.num_proc:
            best = float("inf")
            for repeat in range(args.repeats):
                out = Path(scratch) / f"out-{num_proc}-{repeat}"
                start = time.perf_counter()
                report = build_parallel(Path(scratch) / "src", out, num_proc=num_proc)
                best = min(best, time.perf_counter() - start)
                if report.rows_out != args.rows:
                    raise RuntimeError(f"expected {args.rows} rows out, got {report.rows_out}: {report.table()}")
            runs.append({"num_proc": num_proc, "seconds": round(best, 3), "rows_per_s": round(args.rows / best, 1)})
    for run in runs:
        run["speedup_vs_first"] = round(runs[0]["seconds"] / run["seconds"], 3)
    results = {"rows": args.rows, "fixture_write_s": round(fixture_s, 3), "runs": runs}
    print(json.dumps(results, indent=2))
    print(f"\n{'num_proc':>8} {'seconds':>9} {'rows/s':>10} {'speed-up':>9}")
    for run in runs:
        print(
            f"{run['num_proc']:>8} {run['seconds']:>9.2f} {run['rows_per_s']:>10.1f} {run['speedup_vs_first']:>9.2f}"
        )
    return save_figures(results, args.output)


if __name__ == "__main__":
    main()
