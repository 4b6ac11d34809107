"""Renamed user-facing names keep working for one release, with a warning that names the new one."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import xvlm2vec_common.cli_arguments as cli_arguments
import xvlm2vec_common.cli_errors as cli_errors
import xvlm2vec_common.results_document as results_document


@pytest.mark.parametrize(
    ("old_module", "name", "new_module"),
    [
        ("dataset_builders.cli_args", "UsageError", cli_errors),
        ("dataset_builders.cli_args", "one_line", cli_errors),
        ("dataset_builders.cli_args", "positive_int", cli_arguments),
        ("dataset_builders.cli_args", "local_or_hub", cli_arguments),
        ("hub_cards.results_document", "model_index_entries", results_document),
    ],
)
def test_an_old_import_path_gives_the_same_object_and_warns(old_module: str, name: str, new_module) -> None:
    module = importlib.import_module(old_module)
    with pytest.warns(DeprecationWarning, match=f"{new_module.__name__}.{name}"):
        assert getattr(module, name) is getattr(new_module, name)


def test_an_old_module_path_has_only_the_moved_names() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        importlib.import_module("dataset_builders.cli_args").no_such_name  # noqa: B018


def test_from_backbone_takes_the_old_keyword_with_a_warning(tmp_path: Path) -> None:
    from modeling_xvlm2vec import XVLM2VecModel

    missing = str(tmp_path / "no_such_checkpoint")
    # the old keyword's value is the one loaded: it fails on that folder, after the warning
    with pytest.warns(FutureWarning, match="model_name_or_path"), pytest.raises(OSError, match="no_such_checkpoint"):
        XVLM2VecModel.from_backbone(name_or_path=missing)
    with pytest.raises(TypeError, match="model_name_or_path"):
        XVLM2VecModel.from_backbone()
