"""The ``xvlm2vec build {mmmeb,parallel}`` verb: write a Hub-layout dataset folder and its report.

Exit status 1 when the rejected rows exceed ``--max-rejects`` (default 0 for MMMEB, no limit
for the parallel corpus, whose cleaning rules drop pairs by design).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dataset_builders.mmeb_train import (
    MMEB_TRAIN_REVISION,
    add_selection_arguments,
    check_local_subsets,
    reproduce_parallel_jsonl,
    selected_subsets,
)
from dataset_builders.mmmeb import build_mmmeb
from dataset_builders.parallel import RELEASE_FILENAME, build_parallel
from dataset_builders.report import REPORT_FILENAME, BuildReport
from dataset_builders.source import check_source
from modeling_xvlm2vec.languages import load_languages
from xvlm2vec_common.cli_arguments import language_codes, non_negative_int, positive_int
from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.safe_outputs import check_output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec build``."""
    parser.add_argument("kind", choices=["mmmeb", "parallel"], help="which dataset to build")
    parser.add_argument(
        "--source",
        default=None,
        help="release folder or Hub repo id (mmmeb: the jsonl files; parallel: parallel_shuffled.jsonl)",
    )
    parser.add_argument(
        "--revision",
        default=None,
        help="pinned revision (commit or tag) of a Hub --source or --mmeb-train "
        f"(MMEB-train: {MMEB_TRAIN_REVISION} by default)",
    )
    parser.add_argument(
        "--images", type=Path, default=None, help="image root, a folder or a zip archive (default: the source)"
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="Hub-layout output folder")
    parser.add_argument(
        "--sample", type=positive_int, default=None, help="keep the first N good rows per split (small builds)"
    )
    parser.add_argument(
        "--max-rejects",
        type=non_negative_int,
        default=None,
        help="fail (exit 1) above this many rejected rows (default: 0 for mmmeb, no limit for parallel)",
    )
    parser.add_argument("--num-proc", type=positive_int, default=None, help="worker processes for writing the shards")
    parser.add_argument(
        "--max-dev-rows",
        type=non_negative_int,
        default=2000,
        help="parallel: most rows per language held out as dev (0: none, every row in train in file "
        "order, as the released run trained)",
    )
    group = parser.add_argument_group("parallel corpus from MMEB-train + translations (instead of --source)")
    group.add_argument("--mmeb-train", default=None, help="MMEB-train Hub-layout folder or repo id")
    group.add_argument(
        "--translations", type=Path, default=None, help="journal folder written by `xvlm2vec translate`"
    )
    add_selection_arguments(group)


def check_paths(args: argparse.Namespace) -> None:
    """Missing local inputs (``--source``, ``--images``, ``--mmeb-train``, ``--translations``) are user errors."""
    for argument in ("source", "mmeb_train"):
        if getattr(args, argument):
            check_source(getattr(args, argument), f"--{argument.replace('_', '-')}")
    for argument in ("images", "translations"):
        if getattr(args, argument) is not None and not Path(getattr(args, argument)).exists():
            raise UsageError(f"--{argument} {getattr(args, argument)}: no such file or folder")


def _build(args: argparse.Namespace) -> BuildReport:
    # before any work: replacing --output-dir must not delete an input (a translation journal, say)
    check_output_dir(
        args.output_dir, REPORT_FILENAME, inputs=(args.source, args.images, args.mmeb_train, args.translations)
    )
    check_paths(args)
    if args.kind == "mmmeb":
        if not args.source:
            raise UsageError("build mmmeb: --source is required")
        max_rejects = 0 if args.max_rejects is None else args.max_rejects
        return build_mmmeb(
            args.source, args.output_dir, args.images, args.sample, max_rejects, args.revision, args.num_proc
        )
    if bool(args.source) == bool(args.mmeb_train and args.translations):
        raise UsageError("build parallel: give either --source, or --mmeb-train with --translations")
    if args.source:
        return build_parallel(
            args.source,
            args.output_dir,
            args.images,
            args.sample,
            args.max_rejects,
            args.revision,
            args.num_proc,
            max_dev_rows=args.max_dev_rows,
        )
    if args.images is None:
        raise UsageError("build parallel --mmeb-train: --images (the MMEB image root) is required")
    if args.sample is not None:
        raise UsageError("build parallel --mmeb-train: use --rows-per-subset, --sample applies to --source builds")
    languages = tuple(language_codes(args.languages))
    subsets = tuple(selected_subsets(args.subsets))
    check_local_subsets(args.mmeb_train, subsets, "--mmeb-train")
    args.output_dir.resolve().parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(
        prefix=f".{args.output_dir.name}.corpus-", dir=args.output_dir.resolve().parent
    ) as scratch:
        result = reproduce_parallel_jsonl(  # kept in the output folder: the release-format corpus
            args.mmeb_train,
            args.translations,
            Path(scratch) / RELEASE_FILENAME,
            languages=languages,
            subsets=subsets,
            rows_per_subset=args.rows_per_subset,
            revision=args.revision or MMEB_TRAIN_REVISION,
            split=args.split,
            registry=load_languages(args.languages_file),
        )
        return build_parallel(
            scratch,
            args.output_dir,
            args.images,
            None,
            args.max_rejects,
            None,
            args.num_proc,
            max_dev_rows=args.max_dev_rows,
            upstream=result.fragment,
            card_note=result.card_note(),
            keep_release=True,
        )


def run(args: argparse.Namespace) -> int:
    """Build, print the report table, and return 1 when the report did not pass."""
    report = _build(args)
    print(report.table())
    print(f"report: {Path(args.output_dir) / 'build_report.json'}")
    return 0 if report.passed else 1
