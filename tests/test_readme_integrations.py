"""The README's "Use it with" snippets run as written, on a tiny model and MMMEB built from the fixtures."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def use_it_with_blocks() -> list[str]:
    """The fenced python blocks of the README section "## Use it with", in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Use it with", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture(scope="module")
def places(tiny_models, images, built_mmmeb, tmp_path_factory) -> dict[str, str]:
    """README placeholders -> real paths (longest first, so `path/to/model-vllm` is not cut by `path/to/model`)."""
    root = tmp_path_factory.mktemp("readme")
    model, _ = tiny_models("qwen2_vl")
    model.save_pretrained(root / "model")
    images[0].save(root / "photo.jpg")
    return {
        "path/to/model-vllm": str(root / "vllm"),
        "path/to/model": str(root / "model"),
        "path/to/mmmeb": str(built_mmmeb),
        "photo.jpg": str(root / "photo.jpg"),
    }


def run_block(block: str, places: dict[str, str]) -> dict:
    for placeholder, path in places.items():
        block = block.replace(f'"{placeholder}"', repr(path))
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the project's own README
    return namespace


def test_there_is_one_snippet_per_integration() -> None:
    blocks = use_it_with_blocks()
    assert len(blocks) == 3
    assert "SentenceTransformer" in blocks[0] and "mteb.evaluate" in blocks[1] and "export_vllm" in blocks[2]


def test_sentence_transformers_snippet(places, tiny_models) -> None:
    ns = run_block(use_it_with_blocks()[0], places)
    width = tiny_models("qwen2_vl")[0].config.hidden_size
    assert ns["queries"].shape == ns["images"].shape == ns["pairs"].shape == (1, width)
    np.testing.assert_allclose(np.linalg.norm(ns["pairs"], axis=1), 1.0, atol=1e-5)


def test_mteb_snippet(places) -> None:
    pytest.importorskip("mteb")
    ns = run_block(use_it_with_blocks()[1], places)
    task = ns["results"].task_results[0]
    assert task.task_name == "MMMEB_xtd_t2i" and 0.0 <= task.get_score() <= 1.0
    assert {"en", "it"} <= {score["hf_subset"] for score in task.scores["test"]}


def test_vllm_snippet(places) -> None:
    ns = run_block(use_it_with_blocks()[2], places)
    report = ns["report"]
    assert report.architecture == "Qwen2VLForConditionalGeneration"
    serve = f"python -m vllm.entrypoints.openai.api_server --model {places['path/to/model-vllm']} --runner pooling"
    assert report.serve_command == serve
    assert (Path(places["path/to/model-vllm"]) / "1_Pooling" / "config.json").is_file()


def test_each_snippet_names_the_install_that_brings_its_imports() -> None:
    """What a snippet imports comes with `pip install .` plus the extras the README names right before it."""
    import importlib.metadata

    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((README.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    distributions = importlib.metadata.packages_distributions()
    own = {"xvlm2vec", "modeling_xvlm2vec", "dataset_builders", "hub_cards"}
    section = README.read_text(encoding="utf-8").split("## Use it with", 1)[1].split("\n## ", 1)[0]
    before_blocks = re.split(r"```python\n.*?```", section, flags=re.DOTALL)
    for block, text_before in zip(use_it_with_blocks(), before_blocks):
        named = [
            name
            for group in re.findall(r"pip install \"?xvlm2vec\[([\w,-]+)\]", text_before)
            for name in group.split(",")
        ]
        assert all(name in extras for name in named), f"README names extras {named}; pyproject has {sorted(extras)}"
        requirements = project["dependencies"] + [req for name in named for req in extras[name]]
        provided = {canonicalize_name(Requirement(req).name) for req in requirements}
        imported = set(re.findall(r"^(?:from|import) (\w+)", block, flags=re.MULTILINE)) - own
        for module in imported:
            needed = {canonicalize_name(dist) for dist in distributions.get(module, [])}
            assert needed & provided, f"the snippet imports {module} ({needed}); the README's install gives {named}"
