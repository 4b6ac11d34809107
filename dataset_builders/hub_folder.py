"""A local Hub-layout dataset folder read once: its card's configs, their splits and parquet files.

``datasets.get_dataset_config_names``, ``get_dataset_split_names`` and ``load_dataset`` each resolve a
folder as a dataset module and parse its card's YAML again; a run that lists configs, then splits, then
loads several splits pays that every time. :func:`read_hub_folder` parses the card once per folder state
(with the library's own ``MetadataConfigs`` and data-files pattern resolution, so patterns mean what they
mean to ``load_dataset``) and :meth:`HubFolder.load_split` reads a split's parquet shards directly into an
in-memory ``datasets.Dataset`` (features from the shards' own schema metadata). The parse is memoised by the
folder's file listing (paths, sizes, modification times), so a folder rebuilt in place is read again.

Only a local folder whose card declares ``configs`` with parquet data files takes this path; anything else
(a Hub repo, a folder without such a card) is ``None`` here and goes through ``datasets`` as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from dataset_builders.hub_layout import check_data_file_path, check_data_file_pattern, data_file_patterns

#: Memoised folders (each entry is a few paths per split; the table data is never kept here).
_MEMO_SIZE = 16


@dataclass(frozen=True)
class HubFolder:
    """Configs of a local Hub-layout folder in card order, each with its splits' parquet files (resolved paths)."""

    path: Path
    files: dict[str, dict[str, tuple[str, ...]]]

    def config_names(self) -> list[str]:
        """The card's config names, in card order (as ``datasets.get_dataset_config_names``)."""
        return list(self.files)

    def split_names(self, config: str) -> list[str]:
        """The splits of ``config``; an unknown config is a ValueError naming the known ones."""
        return list(self._config(config))

    def load_split(self, config: str, split: str) -> datasets.Dataset:
        """Split ``split`` of ``config`` as an in-memory ``Dataset`` of its parquet shards, in shard order."""
        splits = self._config(config)
        if split not in splits:
            raise ValueError(f'Unknown split "{split}". Should be one of {list(splits)}.')
        tables = [pq.read_table(path) for path in splits[split]]
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        return datasets.Dataset(table)

    def _config(self, config: str) -> dict[str, tuple[str, ...]]:
        if config not in self.files:
            raise ValueError(f"BuilderConfig '{config}' not found. Available: {list(self.files)}")
        return self.files[config]


def _listing(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime) of every file under ``folder``: what decides whether a memoised read is current."""
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        entries.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


@lru_cache(maxsize=_MEMO_SIZE)
def _parse(folder: Path, listing: tuple[tuple[str, int, int], ...]) -> HubFolder | None:
    """Parse ``folder``'s card once for this ``listing``; None when it has no parquet ``configs``. A data file
    pattern or file leaving the folder is a ``UsageError`` (``hub_layout.check_data_files``' rules)."""
    from datasets.data_files import DataFilesDict, sanitize_patterns
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    card_path = folder / "README.md"
    if not card_path.is_file():
        return None
    configs = MetadataConfigs.from_dataset_card_data(DatasetCard.load(card_path).data)
    if not configs:
        return None
    files: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, settings in configs.items():
        patterns = settings.get("data_files")
        if patterns is None or settings.get("data_dir") is not None:
            return None
        for pattern in data_file_patterns(patterns):  # nothing outside the folder is resolved, let alone read
            check_data_file_pattern(str(folder), pattern)
        resolved = DataFilesDict.from_patterns(sanitize_patterns(patterns), base_path=str(folder))
        splits = {split: tuple(str(path) for path in paths) for split, paths in resolved.items()}
        for path in (path for paths in splits.values() for path in paths):
            check_data_file_path(str(folder), folder, path)
        if not all(paths and all(path.endswith(".parquet") for path in paths) for paths in splits.values()):
            return None
        files[name] = splits
    return HubFolder(folder, files)


def read_hub_folder(name_or_path: str | Path) -> HubFolder | None:
    """The local Hub-layout folder ``name_or_path`` read once (see the module docstring); None for anything else."""
    folder = Path(name_or_path)
    if not folder.is_dir():
        return None
    folder = folder.resolve()
    return _parse(folder, _listing(folder))
