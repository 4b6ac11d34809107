"""`train.py` and `xvlm2vec train`: parse a recipe with TRL's `TrlParser`, distil, save a loadable XVLM2Vec folder.

    accelerate launch train.py --config recipes/tiny_cpu.yaml --output_dir runs/tiny --max_steps 20
    xvlm2vec train --config tiny_cpu --output_dir runs/tiny --max_steps 20

As in TRL's scripts, :func:`make_parser` builds the parser and :func:`main` takes the three parsed
dataclasses; :func:`run` is the command line (``--config`` takes a YAML path or a shipped recipe's
name) and :func:`recipe_arguments` the typed way in (a recipe plus keyword overrides). Every recipe
field can be overridden on the command line (`--learning_rate 2e-5`, `--teacher PATH`, ...).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, ScriptArguments, TrlParser

from modeling_xvlm2vec.conventions import CONVENTIONS
from xvlm2vec_common.cli_arguments import local_or_hub
from xvlm2vec_common.cli_errors import UsageError, exit_usage_error, one_line
from xvlm2vec_common.model_folder import check_xvlm2vec_source

from ..progress import progress_enabled
from ..resources import recipe_path, shipped_names
from .checkpoints import resolve_resume
from .config import TEACHER_SAME_CHECKPOINT, SKDConfig
from .data import load_split, with_lengths
from .guards import TrainingStopped
from .models import lora_config, model_init_kwargs
from .outputs import check_training_output
from .trainer import SKDTrainer

logger = logging.getLogger(__name__)


@dataclass
class SKDScriptArguments(ScriptArguments):
    """Data and export options of `train.py` (TRL's `ScriptArguments` plus the export choice).

    Parameters:
        dataset_name: a built parallel-corpus folder or Hub repo (docs/architecture.md layout).
        dataset_config: its config (`it`, `es`, `fr`, `de` or `all`).
        dataset_train_split / dataset_test_split: the training and held-out splits (`train`, `dev`).
        save_adapter_only: with LoRA, save only the adapter (`output_dir/adapter`) instead of the merged model.
        trust_remote_code: allow a student or teacher checkpoint whose folder maps to its own code (`auto_map`)
            to run that code when it loads. xVLM2Vec folders never need it (the installed classes load them).
        build_tiny_inputs: when the model or the data is not given, build a tiny random Qwen2-VL model and the
            fixtures' parallel corpus under `output_dir/tiny_inputs` (the tiny CPU recipe sets it).
        convention: the input convention of the published embedder a backbone checkpoint (student or teacher) is:
            `vlm2vec` (default), `vlm2vec_v2`, `gme`, `qwen3_vl_embedding` (docs/teachers.md). xVLM2Vec folders
            carry theirs.
    """

    dataset_test_split: str = field(default="dev", metadata={"help": "Held-out split used for evaluation."})
    save_adapter_only: bool = field(
        default=False, metadata={"help": "With LoRA, save the adapter only instead of merging it into the model."}
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run the code a student/teacher checkpoint maps to in its auto_map (only code you trust); "
            "xVLM2Vec folders load with the installed classes and never need it."
        },
    )
    build_tiny_inputs: bool = field(
        default=False,
        metadata={"help": "Without --model_name_or_path / --dataset_name, build a tiny model and corpus to train on."},
    )
    convention: str | None = field(
        default=None,
        metadata={
            "help": "Input convention of a backbone checkpoint (student/teacher): vlm2vec (default), vlm2vec_v2, gme, "
            "qwen3_vl_embedding (docs/teachers.md).",
            "choices": sorted(CONVENTIONS),
        },
    )


Arguments = tuple[SKDScriptArguments, SKDConfig, ModelConfig]

SHORT_HELP = """usage: xvlm2vec train --config NAME_OR_YAML [--model_name_or_path MODEL] [--dataset_name DATA]
                      [--output_dir DIR] [--FIELD VALUE ...]
       accelerate launch [--config_file ACCELERATE_YAML] -m xvlm2vec train ... (or train.py ...)

Distil a multilingual xVLM2Vec student from a recipe (self-knowledge distillation, docs/training.md).

  --config NAME_OR_YAML      a recipe: a YAML file or a shipped name ({recipes})
  --model_name_or_path MODEL an XVLM2Vec folder/repo or a backbone checkpoint (student and self-teacher)
  --dataset_name DATA        a built parallel-corpus folder or Hub repo (`xvlm2vec build parallel`)
  --dataset_config NAME      its config (it, es, fr, de, all; default: the corpus's only config)
  --output_dir DIR           where checkpoints and the saved student go
  --max_steps N              stop after N optimiser steps (quick runs)

The tiny_cpu recipe needs none of them: without a model or data it builds a tiny random model and
the fixtures' corpus under OUTPUT_DIR/tiny_inputs. Every recipe field can be overridden on the
command line; `xvlm2vec train --help-all` lists all {count} arguments."""


class SKDParser(TrlParser):
    """TRL's parser whose usage errors are one line ``error: ...`` (exit status 2), as every verb's."""

    def error(self, message: str) -> None:
        """Print ``error: <prog>: message`` and exit 2."""
        exit_usage_error(self, message)


def make_parser() -> TrlParser:
    """TRL's parser over the three dataclasses: script (data, export), SKDConfig (training), ModelConfig (model,
    LoRA).
    """
    return SKDParser((SKDScriptArguments, SKDConfig, ModelConfig))


def resolve_config_argument(argv: list[str]) -> list[str]:
    """``argv`` with ``--config NAME`` replaced by the shipped recipe's path (paths are kept)."""
    argv = list(argv)
    try:
        for index, arg in enumerate(argv):
            if arg == "--config" and index + 1 < len(argv):
                argv[index + 1] = str(recipe_path(argv[index + 1]))
            elif arg.startswith("--config="):
                argv[index] = "--config=" + str(recipe_path(arg.split("=", 1)[1]))
    except ValueError as error:
        raise UsageError(f"--config: {error}") from None
    return argv


def parse_args(argv: list[str] | None = None) -> Arguments:
    """Parse `--config recipe.yaml` (or a recipe name) and command-line overrides into the three dataclasses."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return make_parser().parse_args_and_config(args=resolve_config_argument(argv))
    except ValueError as error:  # unknown arguments, or values the training arguments refuse
        raise UsageError(one_line(error)) from error


def recipe_arguments(recipe: str | Path, **overrides: Any) -> Arguments:
    """The three dataclasses of ``recipe`` (a YAML path or a shipped name) with typed ``overrides`` of any field."""
    import yaml

    values = yaml.safe_load(Path(recipe_path(recipe)).read_text(encoding="utf-8")) or {}
    return make_parser().parse_dict({**values, **overrides})


def fill_tiny_inputs(script_args: SKDScriptArguments, training_args: SKDConfig, model_args: ModelConfig) -> None:
    """With ``build_tiny_inputs``, build (or reuse) a tiny model and the fixtures' corpus for what is not given."""
    if not script_args.build_tiny_inputs or (model_args.model_name_or_path and script_args.dataset_name):
        return
    from xvlm2vec.testing.training_inputs import tiny_training_inputs

    model_dir, corpus_dir = tiny_training_inputs(
        Path(training_args.output_dir) / "tiny_inputs", seed=training_args.seed
    )
    if not model_args.model_name_or_path:
        model_args.model_name_or_path = str(model_dir)
        logger.info("no --model_name_or_path: training the tiny model %s", model_dir)
    if not script_args.dataset_name:
        script_args.dataset_name = str(corpus_dir)
        logger.info("no --dataset_name: training on the fixtures' corpus %s", corpus_dir)


def check_output(script_args: SKDScriptArguments, training_args: SKDConfig, model_args: ModelConfig) -> None:
    """Refuse an ``--output_dir`` (or ``--teacher_cache``) that is not safe to write, before anything is written
    (:func:`~.outputs.check_training_output`)."""
    teacher = training_args.teacher if training_args.teacher != TEACHER_SAME_CHECKPOINT else None
    check_training_output(
        training_args.output_dir,
        training_args.teacher_cache,
        [model_args.model_name_or_path, teacher, script_args.dataset_name, training_args.teacher_cache],
    )


def check_arguments(script_args: SKDScriptArguments, training_args: SKDConfig, model_args: ModelConfig) -> None:
    """User errors found before any data or model is loaded (UsageError naming the argument).

    The student and teacher are checked from their ``config.json`` alone (type, and code that
    would run without ``--trust_remote_code``); the data set must be an existing folder or a Hub id.
    """
    if not model_args.model_name_or_path:
        raise UsageError("--model_name_or_path is required (an XVLM2Vec folder/repo or a backbone checkpoint)")
    check_xvlm2vec_source(
        model_args.model_name_or_path, "--model_name_or_path", script_args.trust_remote_code, model_args.model_revision
    )
    if training_args.teacher not in (None, TEACHER_SAME_CHECKPOINT):
        check_xvlm2vec_source(training_args.teacher, "--teacher", script_args.trust_remote_code)
    if not script_args.dataset_name:
        raise UsageError("--dataset_name is required (a built parallel-corpus folder or Hub repo)")
    local_or_hub(script_args.dataset_name, "--dataset_name")
    lora_config(model_args)


def main(script_args: SKDScriptArguments, training_args: SKDConfig, model_args: ModelConfig) -> Path:
    """Train as the three parsed dataclasses say, save the student, print the final metrics as JSON; return the
    folder.
    """
    check_output(script_args, training_args, model_args)
    fill_tiny_inputs(script_args, training_args, model_args)
    check_arguments(script_args, training_args, model_args)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    train = load_split(script_args, script_args.dataset_train_split, training_args.languages)
    if training_args.train_sampling_strategy in ("group_by_length", "batch_rebalance"):
        train = with_lengths(train, training_args.length_column_name)
    evaluating = training_args.eval_strategy != "no"
    dev = load_split(script_args, script_args.dataset_test_split, training_args.languages) if evaluating else None
    trainer = SKDTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train,
        eval_dataset=dev,
        peft_config=lora_config(model_args),
        trust_remote_code=script_args.trust_remote_code,
        model_init_kwargs={**model_init_kwargs(model_args), "convention": script_args.convention},
    )
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(result.metrics)
    if dev is not None:
        metrics.update(trainer.evaluate())
    saved = trainer.save_student(script_args.save_adapter_only)
    trainer.save_metrics("all", metrics)
    if trainer.is_world_process_zero():
        print(json.dumps({"saved": str(saved), **metrics}, indent=2))
    return saved


def run(argv: list[str] | None = None) -> int:
    """The command line of `train.py` and `xvlm2vec train`: short ``--help``, full ``--help-all``; 0 when trained."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--help-all" in argv:
        make_parser().print_help()
        return 0
    if "-h" in argv or "--help" in argv:
        count = sum(len(action.option_strings) > 0 for action in make_parser()._actions)
        print(SHORT_HELP.format(recipes=", ".join(shipped_names("recipes")), count=count))
        return 0
    script_args, training_args, model_args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING)
    if not progress_enabled():
        training_args.disable_tqdm = True  # not a terminal: the Trainer logs one line per logging step instead
    try:
        main(script_args, training_args, model_args)
    except TrainingStopped as error:
        print(f"error: training stopped: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from xvlm2vec_common.cli_errors import report_usage_errors

    sys.exit(report_usage_errors(run))
