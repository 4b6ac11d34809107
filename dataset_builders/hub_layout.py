"""Materialise ``datasets`` builders as one Hub-layout folder: parquet shards + README.md card.

Each builder (one per config) runs ``download_and_prepare(..., file_format="parquet")`` in a
scratch folder; its shards are moved to ``data/<config>/<split>-XXXXX-of-YYYYY.parquet`` and the
card's YAML gets ``configs:`` (data files per split) and ``dataset_info`` (features, split sizes)
through the library's own ``MetadataConfigs`` and ``DatasetInfosDict``, so
``load_dataset(folder, config, split=...)`` reads it like a Hub repository.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import datasets
from datasets import DatasetBuilder, DatasetInfo
from datasets.info import DatasetInfosDict
from datasets.splits import SplitDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from dataset_builders.names import check_name
from xvlm2vec_common.cli_errors import UsageError

DATA_DIR = "data"


def _move_shards(prep_dir: Path, builder: DatasetBuilder, target_dir: Path) -> dict[str, str]:
    """Move the prepared parquet shards of every non-empty split; return ``{split: glob pattern}``.

    Empty splits are left out (``load_dataset`` cannot read a declared split with no rows).
    """
    patterns: dict[str, str] = {}
    prefix = builder.dataset_name
    for split, split_info in builder.info.splits.items():
        check_name(split, "split")
        if split_info.num_examples == 0:
            continue
        target_dir.mkdir(parents=True, exist_ok=True)
        shards = sorted(prep_dir.glob(f"{prefix}-{split}.parquet")) + sorted(
            prep_dir.glob(f"{prefix}-{split}-*.parquet")
        )
        if not shards:
            raise RuntimeError(f"builder {builder.config.name!r} wrote no parquet file for split {split!r}")
        for index, shard in enumerate(shards):
            shutil.move(str(shard), target_dir / f"{split}-{index:05d}-of-{len(shards):05d}.parquet")
        patterns[split] = f"{target_dir.relative_to(target_dir.parents[1]).as_posix()}/{split}-*.parquet"
    return patterns


def materialise(
    make_builders: Callable[[str], Sequence[DatasetBuilder]],
    output_dir: str | Path,
    card_data: dict,
    card_body: str,
    num_proc: int | None = None,
) -> DatasetInfosDict:
    """Run every builder from ``make_builders(cache_dir)`` and write the Hub-layout folder.

    ``output_dir`` is a fresh folder (the staging folder of
    :func:`xvlm2vec_common.safe_outputs.atomic_output_dir`): nothing in it is deleted. Config and split
    names are checked with :func:`dataset_builders.names.check_name` before they become paths.
    Splits without rows are not declared, and a config whose splits are all empty is left out.

    ``card_data`` holds extra card metadata (license, language, pretty_name...), ``card_body``
    the markdown below the YAML. Returns the per-config ``DatasetInfo``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    infos = DatasetInfosDict()
    configs = MetadataConfigs()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=output_dir) as scratch:
        for builder in make_builders(str(Path(scratch) / "cache")):
            name = check_name(builder.config.name, "config")
            prep_dir = Path(scratch) / "prepared" / name
            builder.download_and_prepare(str(prep_dir), file_format="parquet", num_proc=num_proc)
            target = output_dir / DATA_DIR / name
            if target.exists():
                raise ValueError(f"config {name!r} is built twice")
            patterns = _move_shards(prep_dir, builder, target)
            if not patterns:
                continue  # every split empty: no config to declare
            configs[name] = {"data_files": [{"split": split, "path": path} for split, path in patterns.items()]}
            info: DatasetInfo = builder.info.copy()
            info.splits = SplitDict(
                {k: v for k, v in info.splits.items() if k in patterns}, dataset_name=info.dataset_name
            )
            infos[name] = info
    data = DatasetCardData(**card_data)
    configs.to_dataset_card_data(data)
    infos.to_dataset_card_data(data)
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{card_body.strip()}\n")
    card.save(output_dir / "README.md")
    return infos


def local_cache_dir(dataset_name: str) -> str | None:
    """A datasets cache folder keyed by a local dataset folder's files (paths, sizes, mtimes); None for Hub repos.

    datasets 5 keys the cache of a local folder by its name and card only, so a folder rebuilt in
    place (or another folder with the same name) would be read from a stale cache.
    """
    folder = Path(dataset_name)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "xvlm2vec_local" / digest.hexdigest()[:16])


def data_file_patterns(data_files: object) -> list[str]:
    """Every path pattern of a card's ``data_files`` entry (a string, a list, or ``{split, path}`` dicts)."""
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, dict):
        return data_file_patterns(data_files.get("path", []))
    if isinstance(data_files, list):
        return [pattern for item in data_files for pattern in data_file_patterns(item)]
    return []


def check_data_file_pattern(dataset_name: str, pattern: str) -> None:
    """Raise ``UsageError`` when a card's ``data_files`` pattern can leave the dataset folder: absolute, a URL
    (``hf://``, ``https://``) or holding a ``..`` component."""
    posix = pattern.replace("\\", "/")
    if (
        "://" in posix
        or posix.startswith("/")
        or (len(posix) > 1 and posix[1] == ":")
        or ".." in PurePosixPath(posix).parts
    ):
        raise UsageError(f"{dataset_name}: its card's data_files {pattern!r} point outside the dataset folder")


def check_data_file_path(dataset_name: str, root: Path, path: str | Path) -> None:
    """Raise ``UsageError`` when the data file ``path`` resolves outside the folder ``root`` (a symlink)."""
    if not Path(path).resolve().is_relative_to(root):
        raise UsageError(f"{dataset_name}: data file {path} links outside the dataset folder")


def check_data_files(dataset_name: str) -> None:
    """Raise ``UsageError`` when the card of the local dataset folder ``dataset_name`` points outside it.

    Refused: a ``data_files`` pattern that :func:`check_data_file_pattern` refuses, and a matched file that
    resolves outside the folder (:func:`check_data_file_path`). Hub repos are not checked (their files are
    the repo's).
    """
    folder = Path(dataset_name)
    card = folder / "README.md"
    if not card.is_file():
        return
    root = folder.resolve()
    try:
        configs = DatasetCard.load(card).data.to_dict().get("configs") or []
    except Exception as error:  # noqa: BLE001 - a card that does not parse is refused with its reason
        raise UsageError(f"{dataset_name}: its README.md card cannot be read ({error})") from None
    for config in configs if isinstance(configs, list) else []:
        for pattern in data_file_patterns(config.get("data_files") if isinstance(config, dict) else None):
            check_data_file_pattern(dataset_name, pattern)
            for path in root.glob(pattern.replace("\\", "/")):
                check_data_file_path(dataset_name, root, path)


def load_split(dataset_name: str, config: str | None, split: str, **kwargs) -> datasets.Dataset:
    """``load_dataset(dataset_name, config, split=split)`` that never reads a stale cache of a local folder
    and never a data file outside it (:func:`check_data_files`)."""
    check_data_files(dataset_name)
    kwargs.setdefault("cache_dir", local_cache_dir(dataset_name))
    return datasets.load_dataset(dataset_name, config, split=split, **kwargs)
