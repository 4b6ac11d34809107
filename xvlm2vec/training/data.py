"""The parallel corpus splits training reads: loaded as built (images left encoded), filtered by language."""

from __future__ import annotations

from typing import Any

import datasets

from dataset_builders import hub_layout
from xvlm2vec_common.cli_errors import UsageError, one_line


def load_split(script_args: Any, split: str, languages: list[str] | None) -> datasets.Dataset:
    """One split of the parallel corpus, images left encoded (the collator decodes and checks them)."""
    if not script_args.dataset_name:
        raise UsageError("--dataset_name is required (a built parallel-corpus folder or Hub repo)")
    try:
        dataset = hub_layout.load_split(script_args.dataset_name, script_args.dataset_config, split)
    except ValueError as error:  # datasets' unknown config or split
        reason = one_line(error) or type(error).__name__
        raise UsageError(
            f"--dataset_name {script_args.dataset_name} --dataset_config {script_args.dataset_config} "
            f"split {split!r}: {reason}"
        ) from error
    missing = {"text_en", "text_lang", "image"} - set(dataset.column_names)
    if missing:
        raise ValueError(f"{script_args.dataset_name} split {split!r} lacks columns {sorted(missing)}")
    if isinstance(dataset.features["image"], datasets.Image):
        dataset = dataset.cast_column("image", datasets.Image(decode=False))
    if languages:
        if "lang" not in dataset.column_names:
            raise UsageError(f"--languages needs a 'lang' column in {script_args.dataset_name}")
        dataset = dataset.filter(lambda lang: lang in languages, input_columns="lang")
        if len(dataset) == 0:
            raise UsageError(f"--languages {' '.join(languages)}: no rows of split {split!r} are in these languages")
    return dataset


def with_lengths(dataset: datasets.Dataset, column: str) -> datasets.Dataset:
    """Add a length column (characters of both sides) for the length-grouped samplers."""
    return dataset.map(
        lambda en, x: {column: [len(a) + len(b) for a, b in zip(en, x)]},
        input_columns=["text_en", "text_lang"],
        batched=True,
    )
