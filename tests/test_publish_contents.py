"""What ``xvlm2vec publish`` stages: only what belongs in the repository, no local paths, no secrets, no way out.

The tiny recipe's real output (``xvlm2vec train --config tiny_cpu``, run here with an absolute
``--output_dir``) is published with the command the README prints; hand-made folders add what a
careless folder holds: logs, inputs, keys and tokens, links to files outside it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from xvlm2vec.cli import main
from xvlm2vec.testing.tiny_model import save_tiny_model

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEXT_SUFFIXES = (".json", ".md", ".txt", ".jinja", ".yaml", ".py")


def publish(*argv: str) -> int:
    """Run ``xvlm2vec publish ...`` in-process and return its exit code."""
    return main(["publish", *argv])


def staged_files(folder: Path) -> dict[str, bytes]:
    """Every file of a staged folder, by POSIX path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def front_matter(card: bytes) -> dict:
    """The YAML front matter of a card."""
    return yaml.safe_load(card.decode().split("---\n")[1]) or {}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A folder holding ``runs/tiny_student``, written by ``xvlm2vec train --config tiny_cpu`` (absolute paths)."""
    base = tmp_path_factory.mktemp("tiny_run")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "xvlm2vec", "train", "--config", "tiny_cpu", "--max_steps", "2"]
    done = subprocess.run(
        [*command, "--output_dir", str(base / "runs" / "tiny_student")],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return base


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny saved model folder (copy it before changing it)."""
    return save_tiny_model("qwen2_vl", tmp_path_factory.mktemp("model") / "student")


def copy_of(folder: Path, tmp_path: Path) -> Path:
    """A private copy of a shared fixture folder."""
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def test_readme_publish_command_accepts_the_tiny_recipe_output(tiny_run, capsys) -> None:
    """The README's publish line, run where the README's train line wrote: accepted, staged without tiny_inputs/."""
    (line,) = [line for line in README.splitlines() if line.startswith("xvlm2vec publish model runs/tiny_student")]
    argv = line.split()[1:]
    previous = Path.cwd()
    os.chdir(tiny_run)
    try:
        assert main(argv) == 0
    finally:
        os.chdir(previous)
    out = capsys.readouterr().out
    target = tiny_run / argv[argv.index("--dry-run-dir") + 1]
    files = staged_files(target)
    assert {"config.json", "model.safetensors", "tokenizer.json", "modules.json", "README.md"} <= set(files)
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json"} <= set(files)
    assert not [name for name in files if name.startswith("tiny_inputs/")]
    assert "left out: tiny_inputs/" in out  # listed, not silently dropped
    for name in files:  # the staged list is printed, each file with its size
        assert re.search(rf"^{re.escape(name)}\s+[\d,]+$", out, flags=re.MULTILINE), name


def test_no_local_path_in_any_uploaded_file(tiny_run, tmp_path, capsys) -> None:
    """Absolute paths of the training machine are rewritten or dropped; base_model is a Hub id or absent."""
    folder = tiny_run / "runs" / "tiny_student"
    local = {str(tiny_run), str(tiny_run.resolve())}
    assert any(root.encode() in data for root in local for data in staged_files(folder).values())  # the hazard
    for base_model in (None, "org/base-model"):
        target = tmp_path / f"dry-{base_model is not None}"
        extra = ["--base-model", base_model] if base_model else []
        argv = ["model", str(folder), "--repo-id", "me/tiny", "--dry-run", "--dry-run-dir", str(target), *extra]
        assert publish(*argv, "--trust-remote-code") == 0
        out = capsys.readouterr().out
        files = staged_files(target)
        leaks = sorted(name for name, data in files.items() for root in local if root.encode() in data)
        assert leaks == [], f"local paths in {leaks}"
        text = "".join(data.decode() for name, data in files.items() if name.endswith(TEXT_SUFFIXES))
        assert re.findall(r"(?<![\w.:/~<-])/(?:home|root|tmp|Users|work)/\S+", text) == []
        adapter_card = front_matter(files["adapter/README.md"])
        adapter_config = json.loads(files["adapter/adapter_config.json"])
        assert adapter_card.get("base_model") == base_model
        assert adapter_config["base_model_name_or_path"] == base_model
        assert not [tag for tag in adapter_card.get("tags", []) if tag.startswith("base_model:") and not base_model]
        assert json.loads(files["training_args.json"])["output_dir"] in ("tiny_student", None)
        assert "rewritten: training_args.json" in out and "rewritten: adapter/adapter_config.json" in out


def test_staged_folder_loads_and_embeds_like_the_source(tiny_run, tmp_path, capsys) -> None:
    """The allow-list keeps everything a user needs: the staged folder gives the source's embeddings."""
    from transformers import AutoModel

    folder = tiny_run / "runs" / "tiny_student"
    target = tmp_path / "dry"
    assert publish("model", str(folder), "--repo-id", "me/tiny", "--dry-run", "--dry-run-dir", str(target)) == 0
    capsys.readouterr()
    texts = ["a red circle", "un quadrato blu"]
    want = AutoModel.from_pretrained(folder, trust_remote_code=True).encode(texts)
    got = AutoModel.from_pretrained(target, trust_remote_code=True).encode(texts)
    assert np.abs(got - want).max() == 0.0  # the same weights, processor and code, byte for byte


SECRETS = ["deploy.pem", "id_rsa", "id_ed25519.pub", "credentials.json", "secrets.yaml", ".env", "hf_token", "api.key"]


def test_secret_files_are_refused_on_one_line_naming_them(model_dir, tmp_path, capsys) -> None:
    folder = copy_of(model_dir, tmp_path)
    for name in SECRETS:
        (folder / name).write_text("not for the Hub\n")
    (folder / "keys").mkdir()
    (folder / "keys" / "service.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    target = tmp_path / "dry"
    assert publish("model", str(folder), "--repo-id", "me/tiny", "--dry-run", "--dry-run-dir", str(target)) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for name in [*SECRETS, "keys/service.pem"]:
        assert name in lines[0], name
    assert not target.exists() and not list(tmp_path.glob(".dry*"))  # nothing staged, nothing left behind
    for legit in ("tokenizer.json", "tokenizer_config.json"):  # the tokenizer is no token
        assert legit not in lines[0]


def test_only_repository_files_are_staged_the_rest_listed(model_dir, tmp_path, capsys) -> None:
    folder = copy_of(model_dir, tmp_path)
    extras = {
        "train.log": "step 1 loss 0.3\n",
        "notes.txt": "private notes\n",
        "wandb/run-1/files/output.log": "log\n",
        "inputs/corpus.jsonl": "{}\n",
        "sub/modeling_other.py": "print('not the model')\n",
    }
    for name, text in extras.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    target = tmp_path / "dry"
    assert publish("model", str(folder), "--repo-id", "me/tiny", "--dry-run", "--dry-run-dir", str(target)) == 0
    out = capsys.readouterr().out
    files = staged_files(target)
    assert not set(extras) & set(files) and not {"wandb", "inputs", "sub"} & {name.split("/")[0] for name in files}
    for listed in ("train.log", "notes.txt", "wandb/", "inputs/", "sub/"):
        assert f"left out: {listed} (" in out, listed
    assert set(files) - {"README.md"} == {
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
    } - set(extras)


def test_links_leaving_the_folder_are_refused_links_inside_are_resolved(model_dir, tmp_path, capsys) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"secret": "outside the model folder"}')
    folder = copy_of(model_dir, tmp_path)
    (folder / "store").mkdir()
    (folder / "processor_config.json").rename(folder / "store" / "processor_config.json")
    (folder / "processor_config.json").symlink_to(Path("store") / "processor_config.json")
    target = tmp_path / "inside"
    assert publish("model", str(folder), "--repo-id", "me/tiny", "--dry-run", "--dry-run-dir", str(target)) == 0
    capsys.readouterr()
    staged = target / "processor_config.json"
    assert not staged.is_symlink() and staged.read_bytes() == (folder / "store" / "processor_config.json").read_bytes()

    (folder / "generation_config.json").symlink_to(outside)
    (folder / "linked_dir").symlink_to(tmp_path, target_is_directory=True)
    target = tmp_path / "outside"
    assert publish("model", str(folder), "--repo-id", "me/tiny", "--dry-run", "--dry-run-dir", str(target)) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "generation_config.json" in err and "linked_dir" in err and "outside the folder" in err
    assert not target.exists()


def test_dataset_shard_linked_outside_is_refused_and_report_paths_dropped(built_mmmeb, tmp_path, capsys) -> None:
    folder = copy_of(built_mmmeb, tmp_path)
    report = json.loads((folder / "build_report.json").read_text())
    assert any(str(value).startswith("/") for value in report.values())  # the builder records absolute paths
    target = tmp_path / "clean"
    assert publish("dataset", str(folder), "--repo-id", "me/mmmeb", "--dry-run", "--dry-run-dir", str(target)) == 0
    capsys.readouterr()
    local = (str(built_mmmeb.parent), str(tmp_path))
    leaks = [name for name, data in staged_files(target).items() for root in local if root.encode() in data]
    assert leaks == []

    shard = next((folder / "data" / "xtd_t2i").glob("it-*.parquet"))
    kept = tmp_path / "elsewhere.parquet"
    shutil.move(shard, kept)
    shard.symlink_to(kept)
    target = tmp_path / "linked"
    assert publish("dataset", str(folder), "--repo-id", "me/mmmeb", "--dry-run", "--dry-run-dir", str(target)) == 2
    err = capsys.readouterr().err
    assert shard.relative_to(folder).as_posix() in err and "outside the folder" in err
    assert not target.exists()


@pytest.mark.parametrize(
    ("text", "published"),
    [
        ("output_dir: /home/me/runs/tiny_student/", "output_dir: tiny_student"),
        ('"source": "/data/mmmeb/release"', '"source": "release"'),
        ("weights in ~/models/student", "weights in student"),
        ("POST /v1/embeddings", "POST /v1/embeddings"),  # a URL route, not a folder of any machine
        ("https://huggingface.co/org/name and arxiv.org/abs/2503.09313", None),
        ("text and/or image, 1/2/3, </details>", None),
    ],
)
def test_local_paths_are_cut_to_their_last_component(text, published) -> None:
    from hub_cards.local_paths import scrub_text

    assert scrub_text(text)[0] == (text if published is None else published)


def test_a_run_without_a_dataset_name_does_not_read_the_working_folders_card(tmp_path, monkeypatch) -> None:
    """The card's trained languages come from the run; a card in the folder publish runs from is not the dataset's."""
    from hub_cards.model_card import trained_languages

    (tmp_path / "README.md").write_text("---\nlanguage:\n- sw\n- yo\n---\n# some other data set\n")
    monkeypatch.chdir(tmp_path)
    assert trained_languages({"dataset_name": None}) == []
    assert trained_languages({"dataset_name": "."}) == ["en", "sw", "yo"]  # named on purpose: read
