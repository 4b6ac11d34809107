"""``xvlm2vec publish --dry-run``: the staged folders load, and folders that would not load are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from xvlm2vec.cli import main
from xvlm2vec.testing.tiny_model import save_tiny_model

REPO_ROOT = Path(__file__).resolve().parents[1]
METRIC_DIR = REPO_ROOT / "metrics" / "mmmeb"


@pytest.fixture(scope="module")
def phi3_v_dir(tmp_path_factory) -> Path:
    """A tiny Phi-3.5-V model: its processor is remote code too (``processing_phi3_v.py``)."""
    return save_tiny_model("phi3_v", tmp_path_factory.mktemp("phi3_v") / "student")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny saved model plus what transformers' Trainer leaves beside it (pickled args, a checkpoint)."""
    folder = save_tiny_model("qwen2_vl", tmp_path_factory.mktemp("model") / "student")
    (folder / "training_args.bin").write_bytes(b"\x80\x04pickled")
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "optimizer.pt").write_bytes(b"\x80\x04pickled")
    return folder


def publish(*argv: str) -> int:
    """Run ``xvlm2vec publish ...`` in-process and return its exit code."""
    return main(["publish", *argv])


def listed_files(stdout: str) -> dict[str, int]:
    """``{file: bytes}`` from the dry-run listing."""
    files = {}
    for line in stdout.splitlines():
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 2 and parts[1].replace(",", "").isdigit() and not parts[0].endswith(" files"):
            files[parts[0].strip()] = int(parts[1].replace(",", ""))
    return files


def test_model_dry_run_lists_the_staged_folder(model_dir, tmp_path, capsys):
    target = tmp_path / "dry"
    assert (
        publish("model", str(model_dir), "--repo-id", "someone/tiny", "--dry-run", "--dry-run-dir", str(target)) == 0
    )
    out = capsys.readouterr().out
    on_disk = {p.relative_to(target).as_posix(): p.stat().st_size for p in target.rglob("*") if p.is_file()}
    assert listed_files(out) == on_disk
    assert {"config.json", "model.safetensors", "modeling_xvlm2vec.py", "backbones.py", "README.md"} <= set(on_disk)
    assert "training_args.bin" not in on_disk and not (target / "checkpoint-5").exists()
    assert "left out: training_args.bin (Trainer training artefact" in out
    assert "left out: checkpoint-5/ (Trainer training artefact" in out
    for name in on_disk:
        if name != "README.md":  # the card is rendered; everything else is a byte copy
            assert (target / name).read_bytes() == (model_dir / name).read_bytes(), name


@pytest.mark.parametrize("backbone_fixture", ["model_dir", "phi3_v_dir"])  # Qwen2-VL; Phi-3.5-V (remote processor)
def test_dry_run_model_loads_in_a_fresh_process_without_the_project(
    backbone_fixture, request, tmp_path, run_isolated, capsys
):
    model_dir = request.getfixturevalue(backbone_fixture)
    target = tmp_path / "someone" / "tiny"
    assert (
        publish("model", str(model_dir), "--repo-id", "someone/tiny", "--dry-run", "--dry-run-dir", str(target)) == 0
    )
    capsys.readouterr()
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    # The card's own usage snippet runs, with the repo id pointing at the dry-run folder.
    code = f"""
import json, re
from pathlib import Path
from PIL import Image
Image.new("RGB", (40, 40), (200, 30, 30)).save("photo.jpg")
card = Path({str(target)!r}, "README.md").read_text()
snippet = re.search(r"```python\\n(.*?)```", card, re.S).group(1).replace("someone/tiny", {str(target)!r})
scope = {{}}
exec(snippet, scope)
model = scope["model"]
emb = model.encode(texts=["ciao mondo", "hello world"])
print(json.dumps({{"module": type(model).__module__, "emb": emb.tolist(),
                  "similarity": model.similarity(scope["queries"], scope["candidates"]).tolist()}}))
"""
    result = run_isolated(code, workdir)
    assert result["module"].startswith("transformers_modules.")  # the folder's own code, not the project's
    assert np.asarray(result["similarity"]).shape == (1, 1)
    from modeling_xvlm2vec import XVLM2VecModel

    expected = XVLM2VecModel.from_pretrained(model_dir).encode(texts=["ciao mondo", "hello world"])
    # Same weights and code on the same CPU: only float32 summation order may differ (~1e-7).
    np.testing.assert_allclose(np.asarray(result["emb"]), expected, atol=1e-5)


def test_dry_run_dataset_loads_with_load_dataset(built_mmmeb, tmp_path, capsys):
    from datasets import load_dataset

    target = tmp_path / "mmmeb"
    assert (
        publish("dataset", str(built_mmmeb), "--repo-id", "someone/mmmeb", "--dry-run", "--dry-run-dir", str(target))
        == 0
    )
    assert "README.md: rendered from the build report" in capsys.readouterr().out
    report = json.loads((built_mmmeb / "build_report.json").read_text())
    for key in ("xtd_t2i/it", "flickr30k_entities_vg/fr"):
        config, split = key.split("/")
        ds = load_dataset(str(target), config, split=split, cache_dir=str(tmp_path / "cache"))
        assert ds.num_rows == report["split_rows"][key]
        assert ds.column_names == [
            "id",
            "query_text",
            "query_image",
            "candidate_texts",
            "candidate_images",
            "positive_index",
        ]
    assert "## Configurations and sizes" in (target / "README.md").read_text()


def test_dry_run_metric_loads_with_evaluate(tmp_path, capsys):
    import evaluate

    target = tmp_path / "someone" / "mmmeb"
    assert (
        publish("metric", str(METRIC_DIR), "--repo-id", "someone/mmmeb", "--dry-run", "--dry-run-dir", str(target))
        == 0
    )
    assert "wrote app.py, requirements.txt" in capsys.readouterr().out
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "app.py", "mmmeb.py", "requirements.txt"]
    metric = evaluate.load(str(target))
    # Query 1: positive ranks first; query 2: positive ranks second -> precision@1 = 1/2, MRR = (1 + 1/2) / 2.
    scores = metric.compute(predictions=[[0.9, 0.1, 0.3], [0.2, 0.8]], references=[0, 0])
    assert scores["precision@1"] == pytest.approx(0.5) and scores["mrr"] == pytest.approx(0.75)


def copy_of(folder: Path, tmp_path: Path) -> Path:
    """A scratch copy of ``folder`` to break."""
    return Path(shutil.copytree(folder, tmp_path / "broken" / folder.name))


def _drop_auto_map(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))


def _bad_card(folder: Path) -> None:
    (folder / "README.md").write_text("---\nlicense: [unclosed\n---\n# card\n")


MODEL_BREAKAGES = {
    "no auto_map": (_drop_auto_map, "auto_map has no AutoConfig entry"),
    "code file missing": (lambda f: (f / "backbones.py").unlink(), "backbones.py: missing"),
    "pickled weights": (
        lambda f: (f / "pytorch_model.bin").write_bytes(b"\x80\x04"),
        "pytorch_model.bin: pickle-based",
    ),
    "card YAML broken": (_bad_card, "README.md: YAML metadata does not parse"),
    "no safetensors": (lambda f: (f / "model.safetensors").unlink(), "no *.safetensors weights"),
    "no processor": (lambda f: (f / "processor_config.json").unlink(), "no processor saved"),
    "no modules.json": (lambda f: (f / "modules.json").unlink(), "modules.json: missing"),
    "sentence-transformers code missing": (
        lambda f: (f / "sentence_xvlm2vec.py").unlink(),
        "sentence_xvlm2vec.py: missing (needed by modules.json)",
    ),
    "processor code missing": (
        lambda f: (f / "processing_phi3_v.py").unlink(),
        "processing_phi3_v.py: missing (needed by processor_config.json auto_map.AutoProcessor)",
    ),
}


@pytest.mark.parametrize("breakage", sorted(MODEL_BREAKAGES))
def test_model_refusals(breakage, model_dir, phi3_v_dir, tmp_path, capsys):
    folder = copy_of(phi3_v_dir if breakage == "processor code missing" else model_dir, tmp_path)
    breaker, message = MODEL_BREAKAGES[breakage]
    breaker(folder)  # no card inputs given: a folder's own README.md is kept, and checked
    target = tmp_path / "dry"
    assert publish("model", str(folder), "--repo-id", "someone/tiny", "--dry-run", "--dry-run-dir", str(target)) == 2
    assert message in capsys.readouterr().err
    assert not target.exists()  # a refused dry run leaves nothing behind
    assert not list(tmp_path.glob(".dry.*"))  # nor its staging sibling


def test_every_problem_of_a_refusal_is_on_one_error_line(model_dir, tmp_path, capsys):
    # user errors are one line and exit 2, however many problems a folder has (a YAML error's own newlines included)
    folder = copy_of(model_dir, tmp_path)
    names = ("code file missing", "pickled weights", "card YAML broken")
    for name in names:
        MODEL_BREAKAGES[name][0](folder)
    assert (
        publish("model", str(folder), "--repo-id", "someone/tiny", "--dry-run", "--dry-run-dir", str(tmp_path / "dry"))
        == 2
    )
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to publish")
    assert all(MODEL_BREAKAGES[name][1] in lines[0] for name in names)


def _drop_parquet(folder: Path) -> None:
    for shard in (folder / "data" / "xtd_t2i").glob("it-*.parquet"):
        shard.unlink()


DATASET_BREAKAGES = {
    "config file missing": (_drop_parquet, "config 'xtd_t2i' split 'it': no file matches 'data/xtd_t2i/it-*.parquet'"),
    "card YAML broken": (_bad_card, "README.md: YAML metadata does not parse"),
    "pickle file": (lambda f: (f / "extra.pkl").write_bytes(b"\x80\x04"), "extra.pkl: pickle-based"),
}


@pytest.mark.parametrize("with_report", [False, True], ids=["card-kept", "card-rendered"])
@pytest.mark.parametrize("breakage", sorted(DATASET_BREAKAGES))
def test_dataset_refusals(breakage, with_report, built_mmmeb, tmp_path, capsys):
    folder = copy_of(built_mmmeb, tmp_path)
    if not with_report:
        (folder / "build_report.json").unlink()  # the folder's own card is kept as it is
    breaker, message = DATASET_BREAKAGES[breakage]
    breaker(folder)
    target = tmp_path / "dry"
    assert (
        publish("dataset", str(folder), "--repo-id", "someone/mmmeb", "--dry-run", "--dry-run-dir", str(target)) == 2
    )
    assert message in capsys.readouterr().err
    assert not target.exists()


def test_metric_refusals(tmp_path, capsys):
    # The repository name must match the module file: evaluate.load("ns/name") reads name.py.
    assert (
        publish(
            "metric",
            str(METRIC_DIR),
            "--repo-id",
            "someone/retrieval",
            "--dry-run",
            "--dry-run-dir",
            str(tmp_path / "a"),
        )
        == 2
    )
    assert "retrieval.py: missing" in capsys.readouterr().err
    folder = copy_of(METRIC_DIR, tmp_path)
    (folder / "mmmeb.py").unlink()
    assert (
        publish("metric", str(folder), "--repo-id", "someone/mmmeb", "--dry-run", "--dry-run-dir", str(tmp_path / "b"))
        == 2
    )
    assert "mmmeb.py: missing" in capsys.readouterr().err
    shutil.copy(METRIC_DIR / "mmmeb.py", folder / "mmmeb.py")
    _bad_card(folder)
    assert (
        publish("metric", str(folder), "--repo-id", "someone/mmmeb", "--dry-run", "--dry-run-dir", str(tmp_path / "c"))
        == 2
    )
    assert "README.md: YAML metadata does not parse" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_bad_arguments_are_refused(model_dir, tmp_path, capsys):
    assert (
        publish(
            "model", str(model_dir), "--repo-id", "no-namespace", "--dry-run", "--dry-run-dir", str(tmp_path / "a")
        )
        == 2
    )
    assert "--repo-id must be 'namespace/name'" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "stale.txt").write_text("old")
    assert publish("model", str(model_dir), "--repo-id", "someone/tiny", "--dry-run", "--dry-run-dir", str(busy)) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert (
        publish(
            "model",
            str(tmp_path / "missing"),
            "--repo-id",
            "someone/tiny",
            "--dry-run",
            "--dry-run-dir",
            str(tmp_path / "c"),
        )
        == 2
    )
    assert "not a folder" in capsys.readouterr().err
