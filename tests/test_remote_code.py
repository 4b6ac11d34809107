"""No code that comes with a model folder runs without --trust-remote-code.

Each folder below maps (``auto_map``) to its own Python file, which writes a marker file when it
is imported. Every verb that loads a model (eval, train student, train teacher, the demo's
example, translate and instructions translate) refuses such a folder without the flag (exit status 2,
no marker) and runs it with the flag (marker written, status 0). ``publish`` never runs code, and
refuses to upload code that is not the installed project's without the flag. An xVLM2Vec folder loads with
the installed classes: its (tampered) copy of the code does not run, flag or not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_eval_baselines import save_clip
from test_train_fixtures import write_parallel_corpus

from xvlm2vec.cli import main as cli_main
from xvlm2vec.demo import example
from xvlm2vec.testing.fixtures import write_mmeb_train
from xvlm2vec.testing.tiny_model import BUILDERS, save_tiny_model
from xvlm2vec_common.cli_errors import report_usage_errors

ROOT = Path(__file__).resolve().parents[1]

#: The folder's own code: writes the marker on import, then subclasses the native classes.
PLANTED = """from pathlib import Path

Path({marker!r}).write_text("the folder's code ran")

from transformers import {config}, {model}


class PlantedConfig({config}):
    pass


class PlantedModel({model}):
    config_class = PlantedConfig
"""


def plant_code(folder: Path, config_class: str, model_class: str, auto_model: str = "AutoModel") -> Path:
    """Give ``folder`` a module ``planted.py`` mapped from its config (``auto_model`` to the model class);
    return the marker it writes when run."""
    marker = folder.parent / f"{folder.name}.marker"
    (folder / "planted.py").write_text(PLANTED.format(marker=str(marker), config=config_class, model=model_class))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "planted.PlantedConfig", auto_model: "planted.PlantedModel"}
    (folder / "config.json").write_text(json.dumps(config))
    return marker


def qwen_backbone(folder: Path) -> Path:
    """A tiny Qwen2-VL checkpoint (not an xVLM2Vec folder) whose config maps to planted code."""
    from transformers import Qwen2VLForConditionalGeneration

    config, processor = BUILDERS["qwen2_vl"](vocab_size=600, hidden=64, layers=2, image_size=56, intermediate=128)
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return plant_code(folder, "Qwen2VLConfig", "Qwen2VLModel")


def test_translators_need_the_flag_for_a_model_with_its_own_code(tmp_path, capsys) -> None:
    from test_datasets_translate import SUBSET, _tiny_t5

    source = write_mmeb_train(tmp_path / "mmeb", rows_per_subset=2, subsets=(SUBSET,))
    runs = {  # a model folder each: transformers keeps a module it imported once
        "translate": [
            "translate",
            "--source",
            str(source),
            "--output-dir",
            str(tmp_path / "journal"),
            "--languages",
            "it",
            "--subsets",
            SUBSET,
            "--max-new-tokens",
            "6",
        ],
        "instructions": [
            "instructions",
            "translate",
            "--languages",
            "pt",
            "--output",
            str(tmp_path / "pt.json"),
            "--max-new-tokens",
            "6",
            "--partial",
        ],
    }
    for name, argv in runs.items():
        _tiny_t5(tmp_path / f"mt_{name}")
        marker = plant_code(tmp_path / f"mt_{name}", "T5Config", "T5ForConditionalGeneration", "AutoModelForSeq2SeqLM")
        argv = [*argv, "--model", str(tmp_path / f"mt_{name}")]
        capsys.readouterr()
        assert cli_main(argv) == 2, name
        error = capsys.readouterr().err
        assert not marker.exists() and "planted.PlantedModel" in error and "--trust-remote-code" in error, name
        assert error.count("\n") == 1 and error.startswith("error: --model "), error
        assert cli_main([*argv, "--trust-remote-code"]) == 0, name
        assert marker.exists(), name
    assert (tmp_path / "pt.json").is_file() and (tmp_path / "journal" / "rejects.jsonl").is_file()


def test_eval_needs_the_flag_for_a_folder_with_its_own_code(built_mmmeb, tmp_path, capsys) -> None:
    marker = plant_code(save_clip(tmp_path / "clip_with_code"), "CLIPConfig", "CLIPModel")
    argv = [
        "eval",
        "--model",
        str(tmp_path / "clip_with_code"),
        "--data",
        str(built_mmmeb),
        "--output-dir",
        str(tmp_path / "out"),
        "--tasks",
        "xtd_t2i",
        "--languages",
        "en",
        "--styles",
        "punct",
        "--no-cache",
        "--max-queries",
        "2",
    ]
    capsys.readouterr()
    assert cli_main(argv) == 2
    error = capsys.readouterr().err
    assert not marker.exists() and "planted.PlantedModel" in error and "--trust-remote-code" in error
    assert error.count("\n") == 1 and error.startswith("error: --model ")
    assert cli_main([*argv, "--trust-remote-code"]) == 0
    assert marker.exists() and (tmp_path / "out" / "results.json").is_file()


def test_train_needs_the_flag_for_a_student_or_teacher_with_its_own_code(tmp_path, capsys) -> None:
    student_marker = qwen_backbone(tmp_path / "student_with_code")
    teacher_marker = qwen_backbone(tmp_path / "teacher_with_code")
    plain_student = save_tiny_model("qwen2_vl", tmp_path / "plain_student")
    corpus = write_parallel_corpus(tmp_path / "corpus", train=8, dev=2)
    common = [
        "--config",
        str(ROOT / "recipes/tiny_cpu.yaml"),
        "--dataset_name",
        str(corpus),
        "--max_steps",
        "1",
        "--disable_tqdm",
        "true",
        "--output_dir",
        str(tmp_path / "run"),
    ]
    student = ["--model_name_or_path", str(tmp_path / "student_with_code")]
    teacher = ["--teacher", str(tmp_path / "teacher_with_code")]
    capsys.readouterr()
    assert cli_main(["train", *common, *student]) == 2
    assert "--model_name_or_path" in capsys.readouterr().err
    assert cli_main(["train", *common, "--model_name_or_path", str(plain_student), *teacher]) == 2
    assert "--teacher" in capsys.readouterr().err
    assert not student_marker.exists() and not teacher_marker.exists()
    assert cli_main(["train", *common, *student, *teacher, "--trust_remote_code", "true"]) == 0
    assert student_marker.exists() and teacher_marker.exists()


def test_demo_example_needs_the_flag(built_mmmeb, tmp_path, capsys) -> None:
    marker = qwen_backbone(tmp_path / "example_with_code")
    argv = [
        "--model",
        str(tmp_path / "example_with_code"),
        "--data",
        str(built_mmmeb),
        "--languages",
        "en",
        "--images",
        "2",
    ]
    capsys.readouterr()
    assert report_usage_errors(example.main, argv) == 2
    assert not marker.exists() and "--trust-remote-code" in capsys.readouterr().err
    assert report_usage_errors(example.main, [*argv, "--trust-remote-code"]) == 0
    assert marker.exists() and "[en]" in capsys.readouterr().out


def test_xvlm2vec_folder_runs_installed_code_and_publish_refuses_foreign_code(built_mmmeb, tmp_path, capsys) -> None:
    folder = save_tiny_model("qwen2_vl", tmp_path / "tampered")
    marker = tmp_path / "tampered.marker"
    code = folder / "modeling_xvlm2vec.py"
    code.write_text(code.read_text() + f"\nfrom pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n")
    shutil.copy(ROOT / "README.md", folder / "README.md")  # a card, so the folder is otherwise publishable

    eval_argv = [
        "eval",
        "--model",
        str(folder),
        "--data",
        str(built_mmmeb),
        "--output-dir",
        str(tmp_path / "out"),
        "--tasks",
        "xtd_t2i",
        "--languages",
        "en",
        "--styles",
        "punct",
        "--no-cache",
        "--max-queries",
        "2",
    ]
    assert cli_main(eval_argv) == 0
    assert cli_main([*eval_argv, "--trust-remote-code"]) == 0
    assert not marker.exists()  # loaded with the installed classes both times

    publish = ["publish", "model", str(folder), "--repo-id", "someone/tampered", "--dry-run"]
    assert cli_main([*publish, "--dry-run-dir", str(tmp_path / "refused")]) == 2
    assert "modeling_xvlm2vec.py: code that is not the installed xvlm2vec's" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert cli_main([*publish, "--dry-run-dir", str(tmp_path / "staged"), "--trust-remote-code"]) == 0
    assert (tmp_path / "staged" / "modeling_xvlm2vec.py").read_text() == code.read_text()
    assert not marker.exists()  # publishing never runs the code


@pytest.mark.parametrize("verb", ["eval", "publish"])
def test_verbs_document_the_flag(verb, capsys) -> None:
    with pytest.raises(SystemExit):
        cli_main([verb, "--help"])
    assert "--trust-remote-code" in capsys.readouterr().out
