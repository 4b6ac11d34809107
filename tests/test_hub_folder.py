"""A local Hub-layout folder read once (``dataset_builders.hub_folder``): the same configs, splits and rows as
``datasets`` gives, one card parse per folder state, and a folder rebuilt in place read again."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import pytest

from dataset_builders import hub_layout
from dataset_builders.hub_folder import read_hub_folder
from xvlm2vec.evaluation.data import load_split


def test_same_configs_splits_and_rows_as_datasets(built_mmmeb) -> None:
    folder = read_hub_folder(built_mmmeb)
    assert folder is not None
    assert folder.config_names() == datasets.get_dataset_config_names(str(built_mmmeb))
    for config in folder.config_names():
        assert folder.split_names(config) == datasets.get_dataset_split_names(str(built_mmmeb), config)
        for split in folder.split_names(config):
            ours = folder.load_split(config, split)
            theirs = hub_layout.load_split(str(built_mmmeb), config, split)
            assert ours.features == theirs.features
            assert ours.with_format("arrow")[:].to_pylist() == theirs.with_format("arrow")[:].to_pylist()
    with pytest.raises(ValueError, match="Unknown split"):
        folder.load_split(folder.config_names()[0], "xx")


def test_the_card_is_parsed_once_per_folder_state(built_mmmeb, tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "mmmeb"
    shutil.copytree(built_mmmeb, copy)
    parses = []
    import huggingface_hub  # the parser imports DatasetCard when it runs: count its loads there

    original = huggingface_hub.DatasetCard.load
    monkeypatch.setattr(
        huggingface_hub.DatasetCard, "load", classmethod(lambda cls, *a, **k: parses.append(1) or original(*a, **k))
    )
    first = read_hub_folder(copy)
    config = first.config_names()[0]
    lang = first.split_names(config)[0]
    for _ in range(3):
        load_split(str(copy), config, lang)
    assert len(parses) == 1
    # rebuilt in place: a shard rewritten (another size) is seen, not served from the memo
    shard = Path(first.files[config][lang][0])
    table = datasets.Dataset.from_parquet(str(shard)).select([0])
    table.to_parquet(str(shard))
    assert len(load_split(str(copy), config, lang).rows) == 1
    assert len(parses) == 2


def test_a_folder_without_card_configs_goes_through_datasets(tmp_path: Path) -> None:
    assert read_hub_folder(tmp_path) is None
    (tmp_path / "README.md").write_text("---\nlicense: other\n---\n")
    assert read_hub_folder(tmp_path) is None
    assert read_hub_folder("org/some-repo") is None
