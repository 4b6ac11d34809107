"""One CLI error policy: a user error is one line ``error: ...`` naming the argument, exit status 2,
before any model is loaded; an unexpected failure keeps its traceback and exits 1.

The table runs in-process through the console script's ``main`` (and ``train.py``'s), with every
``from_pretrained`` of a model made to fail, so a case that loads a model before refusing fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_fixtures import write_parallel_corpus

from xvlm2vec.cli import main as cli_main
from xvlm2vec.testing.tiny_model import save_tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paths(tmp_path_factory, built_mmmeb) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli_errors")
    (root / "empty").mkdir()
    (root / "bert").mkdir()
    (root / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (root / "file.txt").write_text("not a folder")
    (root / "clip").mkdir()
    (root / "clip" / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (root / "checkpoints").mkdir()
    return {
        "model": str(save_tiny_model("qwen2_vl", root / "model")),
        "data": str(built_mmmeb),
        "corpus": str(write_parallel_corpus(root / "corpus", train=8, dev=2)),
        "empty": str(root / "empty"),
        "bert": str(root / "bert"),
        "clip": str(root / "clip"),
        "file": str(root / "file.txt"),
        "out": str(root / "out"),
        "checkpoints": str(root / "checkpoints"),
    }


class ModelLoaded(AssertionError):
    """Raised instead of loading model weights."""


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch):
    """Any model weights loaded by a case is a failure (user errors come before models); no network."""
    from huggingface_hub import constants
    from transformers import PreTrainedModel

    def refuse(*args, **kwargs):
        raise ModelLoaded("a model was loaded before the user error was reported")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def _eval(p, *extra: str) -> list[str]:
    return ["eval", "--model", p["model"], "--data", p["data"], "--output-dir", p["out"], *extra]


#: (case, argv builder, what the one-line message must contain). Verb-level errors return 2 from main;
#: parse errors exit 2 from argparse. Both print exactly one line starting with "error: ".
CASES = [
    (
        "eval vllm engine with a baseline model",
        lambda p: ["eval", "--model", p["clip"], "--data", p["data"], "--output-dir", p["out"], "--engine", "vllm"],
        "--engine vllm: --model",
    ),
    (
        "eval vllm engine arguments not a JSON object",
        lambda p: _eval(p, "--engine", "vllm", "--vllm-engine-args", "[1]"),
        "argument --vllm-engine-args: expected a JSON object",
    ),
    (
        "eval mistyped relative model path",
        lambda p: ["eval", "--model", "./no_such_model", "--data", p["data"], "--output-dir", p["out"]],
        "--model ./no_such_model: no such file or folder",
    ),
    (
        "eval missing deep path",
        lambda p: ["eval", "--model", "runs/x/no_model", "--data", p["data"], "--output-dir", p["out"]],
        "--model runs/x/no_model: no such file or folder",
    ),
    (
        "eval missing home path",
        lambda p: ["eval", "--model", "~/no_such_xvlm2vec_model", "--data", p["data"], "--output-dir", p["out"]],
        "no such file or folder",
    ),
    (
        "eval missing absolute path",
        lambda p: ["eval", "--model", p["out"] + "/nothing", "--data", p["data"], "--output-dir", p["out"]],
        "no such file or folder",
    ),
    (
        "eval unknown Hub id offline",
        lambda p: ["eval", "--model", "nobody/no-such-model", "--data", p["data"], "--output-dir", p["out"]],
        "no such local folder, and no Hub model",
    ),
    (
        "eval invalid repo id",
        lambda p: ["eval", "--model", "bad..name", "--data", p["data"], "--output-dir", p["out"]],
        "--model bad..name",
    ),
    (
        "eval model folder without config",
        lambda p: ["eval", "--model", p["empty"], "--data", p["data"], "--output-dir", p["out"]],
        "no config.json",
    ),
    (
        "eval model is a file",
        lambda p: ["eval", "--model", p["file"], "--data", p["data"], "--output-dir", p["out"]],
        "a file, not a model folder",
    ),
    (
        "eval unsupported model type",
        lambda p: ["eval", "--model", p["bert"], "--data", p["data"], "--output-dir", p["out"]],
        "model type 'bert' is not supported",
    ),
    (
        "eval missing data",
        lambda p: _eval(p)[:4] + ["./no_such_data", "--output-dir", p["out"]],
        "--data ./no_such_data: no such file or folder",
    ),
    (
        "eval data not MMMEB",
        lambda p: ["eval", "--model", p["model"], "--data", p["corpus"], "--output-dir", p["out"]],
        "not an MMMEB dataset",
    ),
    ("eval unknown task", lambda p: _eval(p, "--tasks", "foo"), "--tasks ['foo'] match no config"),
    ("eval unknown language", lambda p: _eval(p, "--languages", "en", "xx"), "--languages ['xx'] match no split"),
    (
        "eval language of no chosen config",
        lambda p: _eval(p, "--tasks", "vqa", "--languages", "de"),
        "--languages ['de']",
    ),
    ("eval batch size 0", lambda p: _eval(p, "--batch-size", "0"), "argument --batch-size: must be >= 1, got 0"),
    (
        "eval batch size not a number",
        lambda p: _eval(p, "--batch-size", "x"),
        "argument --batch-size: invalid int value",
    ),
    ("eval max queries 0", lambda p: _eval(p, "--max-queries", "0"), "argument --max-queries: must be >= 1"),
    ("eval unknown style", lambda p: _eval(p, "--styles", "fancy"), "argument --styles: invalid choice"),
    (
        "eval untrusted metric code",
        lambda p: _eval(p, "--metric", "some/metric"),
        "--metric some/metric: a metric module is Python code",
    ),
    ("eval no data argument", lambda p: ["eval", "--model", p["model"], "--output-dir", p["out"]], "required: --data"),
    ("unknown verb", lambda p: ["evaluate"], "invalid choice: 'evaluate'"),
    (
        "fixtures rows 0",
        lambda p: ["fixtures", "mmmeb", "--output-dir", p["out"], "--rows", "0"],
        "argument --rows: must be >= 1, got 0",
    ),
    ("fixtures unknown kind", lambda p: ["fixtures", "mmmb", "--output-dir", p["out"]], "invalid choice: 'mmmb'"),
    (
        "build missing source",
        lambda p: ["build", "mmmeb", "--source", "./no_release", "--output-dir", p["out"]],
        "--source ./no_release: no such folder",
    ),
    (
        "build source is a file",
        lambda p: ["build", "parallel", "--source", p["file"], "--output-dir", p["out"]],
        "expected a folder, got a file",
    ),
    ("build mmmeb without source", lambda p: ["build", "mmmeb", "--output-dir", p["out"]], "--source is required"),
    ("build parallel without inputs", lambda p: ["build", "parallel", "--output-dir", p["out"]], "either --source"),
    (
        "build sample 0",
        lambda p: ["build", "mmmeb", "--source", p["empty"], "--output-dir", p["out"], "--sample", "0"],
        "argument --sample: must be >= 1",
    ),
    (
        "build max rejects -1",
        lambda p: ["build", "mmmeb", "--source", p["empty"], "--output-dir", p["out"], "--max-rejects", "-1"],
        "argument --max-rejects: must be >= 0",
    ),
    (
        "build missing images",
        lambda p: ["build", "mmmeb", "--source", p["empty"], "--images", "./no_images", "--output-dir", p["out"]],
        "--images no_images: no such file or folder",
    ),
    (
        "build unknown subset",
        lambda p: [
            "build",
            "parallel",
            "--mmeb-train",
            p["empty"],
            "--translations",
            p["empty"],
            "--images",
            p["empty"],
            "--subsets",
            "Foo",
            "--output-dir",
            p["out"],
        ],
        "--subsets 'Foo': unknown",
    ),
    (
        "translate English target",
        lambda p: [
            "translate",
            "--model",
            p["model"],
            "--source",
            p["empty"],
            "--output-dir",
            p["out"],
            "--languages",
            "en",
        ],
        "--languages: give target language codes other than en",
    ),
    (
        "translate batch size 0",
        lambda p: [
            "translate",
            "--model",
            p["model"],
            "--source",
            p["empty"],
            "--output-dir",
            p["out"],
            "--batch-size",
            "0",
        ],
        "argument --batch-size: must be >= 1",
    ),
    (
        "translate missing source",
        lambda p: ["translate", "--model", p["model"], "--source", "./no_source", "--output-dir", p["out"]],
        "--source ./no_source: no such folder",
    ),
    (
        "translate missing model",
        lambda p: ["translate", "--model", "./no_mt", "--source", p["empty"], "--output-dir", p["out"]],
        "--model ./no_mt: no such file or folder",
    ),
    (
        "translate unknown subset",
        lambda p: [
            "translate",
            "--model",
            p["model"],
            "--source",
            p["empty"],
            "--output-dir",
            p["out"],
            "--subsets",
            "Foo",
        ],
        "--subsets 'Foo': unknown",
    ),
    (
        "translate empty subsets",
        lambda p: [
            "translate",
            "--model",
            p["model"],
            "--source",
            p["empty"],
            "--output-dir",
            p["out"],
            "--subsets",
            ",",
        ],
        "empty",
    ),
    (
        "convert missing input",
        lambda p: ["convert", "phi3v", "--input", "./no_phi3v", "--output-dir", p["out"]],
        "--input no_phi3v: not a folder (it does not exist)",
    ),
    (
        "convert num crops 0",
        lambda p: ["convert", "phi3v", "--input", p["empty"], "--output-dir", p["out"], "--num-crops", "0"],
        "argument --num-crops: must be >= 1",
    ),
    (
        "publish bad repo id",
        lambda p: ["publish", "model", p["model"], "--repo-id", "no-namespace", "--dry-run"],
        "--repo-id must be 'namespace/name'",
    ),
    (
        "publish missing folder",
        lambda p: ["publish", "model", "./no_folder", "--repo-id", "a/b", "--dry-run"],
        "no_folder: not a folder",
    ),
    (
        "tiny-model unknown backbone",
        lambda p: ["tiny-model", "--backbone", "gpt2", "--output-dir", p["out"]],
        "argument --backbone: invalid choice",
    ),
    ("demo seed not a number", lambda p: ["demo", "--seed", "x"], "argument --seed: invalid int value"),
    ("demo threads 0", lambda p: ["demo", "--threads", "0"], "argument --threads: must be >= 1"),
]

#: ``xvlm2vec train`` (= train.py, TRL's parser): the same policy.
TRAIN_CASES = [
    (
        "train missing model",
        lambda p: ["--model_name_or_path", "./no_model"],
        "--model_name_or_path ./no_model: no such file or folder",
    ),
    (
        "train unsupported model type",
        lambda p: ["--model_name_or_path", p["bert"]],
        "model type 'bert' is neither xvlm2vec nor a supported backbone",
    ),
    ("train no model", lambda p: ["--build_tiny_inputs", "false"], "--model_name_or_path is required"),
    (
        "train missing data",
        lambda p: ["--model_name_or_path", p["model"], "--dataset_name", "./no_corpus"],
        "--dataset_name ./no_corpus: no such file or folder",
    ),
    (
        "train missing teacher",
        lambda p: ["--model_name_or_path", p["model"], "--teacher", "./no_teacher"],
        "--teacher ./no_teacher: no such file or folder",
    ),
    (
        "train bad LoRA task",
        lambda p: ["--model_name_or_path", p["model"], "--lora_task_type", "CAUSAL_LM"],
        "--lora_task_type CAUSAL_LM does not fit",
    ),
    (
        "train nothing to resume",
        lambda p: [
            "--model_name_or_path",
            p["model"],
            "--resume_from_checkpoint",
            "last",
            "--output_dir",
            p["checkpoints"],
        ],
        "no complete checkpoint",
    ),
    (
        "train unknown config",
        lambda p: ["--model_name_or_path", p["model"], "--dataset_config", "xx"],
        "--dataset_config xx",
    ),
    (
        "train language with no rows",
        lambda p: ["--model_name_or_path", p["model"], "--languages", "de"],
        "--languages de: no rows",
    ),
    (
        "train unknown argument",
        lambda p: ["--model_name_or_path", p["model"], "--lerning_rate", "1"],
        "not used by the HfArgumentParser: ['--lerning_rate'",
    ),
    (
        "train value not a number",
        lambda p: ["--learning_rate", "abc"],
        "argument --learning_rate/--learning-rate: invalid float value",
    ),
]


def _status(call) -> int:
    try:
        return call()
    except SystemExit as done:  # argparse's own usage errors
        return done.code


def _one_error_line(capsys) -> str:
    """The one ``error:`` line, last on stderr (progress lines of data read before may precede it), no traceback."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err, err[-2000:]
    return errors[0]


@pytest.mark.parametrize(("case", "argv", "expected"), CASES, ids=[case[0] for case in CASES])
def test_bad_argument_is_one_error_line_and_status_2(
    paths, capsys, monkeypatch, tmp_path, case, argv, expected
) -> None:
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert _status(lambda: cli_main(argv(paths))) == 2
    assert expected in _one_error_line(capsys)
    assert not any(tmp_path.iterdir())  # a refused command writes nothing (not even a default output folder)


@pytest.mark.parametrize(("case", "argv", "expected"), TRAIN_CASES, ids=[case[0] for case in TRAIN_CASES])
def test_train_bad_argument_is_one_error_line_and_status_2(paths, capsys, case, argv, expected) -> None:
    common = [
        "--config",
        str(ROOT / "recipes/tiny_cpu.yaml"),
        "--output_dir",
        paths["out"],
        "--dataset_name",
        paths["corpus"],
        "--disable_tqdm",
        "true",
    ]
    capsys.readouterr()
    assert _status(lambda: cli_main(["train", *common, *argv(paths)])) == 2
    assert expected in _one_error_line(capsys)


def test_vllm_environment_unavailable_is_one_error_line(paths, capsys, monkeypatch, tmp_path) -> None:
    """``--engine vllm`` where the vLLM environment cannot be made (its folder lies under a file)."""
    monkeypatch.setenv("XVLM2VEC_VLLM_ENV", str(Path(paths["file"]) / "env"))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert _status(lambda: cli_main(_eval(paths, "--engine", "vllm"))) == 2
    assert "--engine vllm: the vLLM environment is unavailable" in _one_error_line(capsys)


def test_unexpected_failure_is_not_a_user_error(paths) -> None:
    """A failure past the checks (here: loading the model, made to fail) propagates: traceback, status 1."""
    with pytest.raises(ModelLoaded):
        cli_main(["eval", "--model", paths["model"], "--data", paths["data"], "--output-dir", paths["out"]])


def test_console_script_exit_status(paths, tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "xvlm2vec",
        "eval",
        "--model",
        "./no_such_model",
        "--data",
        paths["data"],
        "--output-dir",
        str(tmp_path / "out"),
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr == "error: --model ./no_such_model: no such file or folder\n"
