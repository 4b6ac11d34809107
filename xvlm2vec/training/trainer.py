"""`SKDTrainer`: a `transformers.Trainer` whose loss is self-knowledge distillation to an English teacher.

As TRL's trainers, it builds what it is given by name: ``SKDTrainer(model="path", args=SKDConfig(...),
peft_config=LoraConfig(...))`` loads the student, wraps it with the LoRA adapters and loads the teacher that
``args.teacher`` names, all through :mod:`.models`; :meth:`SKDTrainer.save_student` saves it as an
XVLM2Vec folder, the adapters merged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import enable_full_determinism, set_seed

from xvlm2vec_common.safe_outputs import atomic_output_dir

from .collator import ParallelCollator, Rejection
from .config import SKDConfig
from .guards import RunGuard, TrainingStopped, all_finite
from .loss import DistillationLoss
from .metrics import translation_metrics
from .models import check_peft_config, load_student, load_teacher
from .objectives import build_objective
from .outputs import OUTPUT_MARKER, kept_entries
from .speedups import apply_speedups
from .teacher import Teacher, refuse_unsynced_teacher
from .teacher_cache import settings_fingerprint, teacher_columns

logger = logging.getLogger(__name__)

ADAPTER_FOLDER = "adapter"
TRAINING_ARGS_BIN = "training_args.bin"
REJECTED_ROWS = "rejected_rows.jsonl"


def write_rejections(path: Path, rejected: list[Rejection]) -> None:
    """Write one JSON line per rejected row (id, language, source data set, reason); nothing when none."""
    if rejected:
        path.write_text("".join(json.dumps(dataclasses.asdict(row), ensure_ascii=False) + "\n" for row in rejected))


def seed_everything(args: SKDConfig) -> None:
    """Seed python, numpy and torch from ``--seed`` (fully deterministic with ``--full_determinism``).

    Called before the trainer builds a model: LoRA's initialisation (and any other random init) draws from
    these generators, so one seed gives bit-identical runs.
    """
    if args.full_determinism:
        enable_full_determinism(args.seed)
    else:
        set_seed(args.seed)


class SKDTrainer(Trainer):
    """Trainer for self-knowledge distillation (xVLM2Vec) on a parallel corpus.

    The teacher (the student with its LoRA adapters off, or a separate frozen model) embeds the English
    side under `no_grad` in eval mode, or its embeddings come from the teacher cache; the student embeds the
    English and x sides (one concatenated forward by default); the objective of `args.objective` (released:
    the weighted mean of `MSE(s(en), t(en))` and `MSE(s(x), t(en))`, plus the image terms with `image_loss`)
    gives the loss, all in :class:`~.loss.DistillationLoss`. Training logs the objective's terms (`loss_en`,
    `loss_x`, ...) and `skipped_rows`; evaluation reports the MSE terms and x->en translation retrieval
    accuracy (`translation_metrics`).

    Args:
        model: the student: a name or path (an XVLM2Vec folder/repo or a backbone checkpoint, loaded with
            `model_init_kwargs`), or a loaded `XVLM2VecModel` / peft model wrapping one.
        args: an [`SKDConfig`].
        teacher_model: a separate frozen teacher; default: the one `args.teacher` names (`load_teacher`), or the
            self-teacher.
        peft_config: LoRA adapters to wrap the student with (TRL's `get_peft_config`); None trains it as given.
        trust_remote_code: let a student or teacher folder that maps to its own code run it when it loads.
        model_init_kwargs: `from_pretrained` arguments of a student given by name (`dtype`, `revision`, ...).
        Other arguments are those of `transformers.Trainer`; the collator defaults to [`ParallelCollator`]
        and `compute_metrics` to [`translation_metrics`].
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(
        self,
        model: str | nn.Module,
        args: SKDConfig,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        teacher_model: nn.Module | None = None,
        data_collator: Any = None,
        compute_metrics: Any = None,
        peft_config: Any = None,
        trust_remote_code: bool = False,
        model_init_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, SKDConfig):
            raise TypeError(f"args must be an SKDConfig, got {type(args).__name__}")
        self.student_source = model if isinstance(model, str) else None
        self.trust_remote_code = trust_remote_code
        self.model_init_kwargs = dict(model_init_kwargs or {})
        model = self._build_student(model, args, check_peft_config(peft_config))
        core = model.get_base_model() if hasattr(model, "get_base_model") else model
        if teacher_model is None:
            teacher_model = load_teacher(
                args.teacher, self.student_source, core.dtype, trust_remote_code, self.model_init_kwargs
            )
        if args.objective == "matryoshka":  # saved with the model: the widths it is trained to be cut to
            core.config.matryoshka_dims = list(args.matryoshka_dims)
        self.teacher = Teacher(model, teacher_model)
        self.loss_fn = DistillationLoss(
            build_objective(args), image_loss=args.image_loss, image_pooling=args.image_pooling
        )
        if data_collator is None:
            data_collator = ParallelCollator(
                core.prepare_inputs,
                args.max_length,
                args.bad_rows,
                fused=args.fused_student_forward,
                image_resize=args.image_resize,
                keep_empty=True,
            )
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            data_collator=data_collator,
            compute_metrics=compute_metrics or translation_metrics,
            **kwargs,
        )
        self.speedups = apply_speedups(self)
        if teacher_model is not None:
            refuse_unsynced_teacher(self.accelerator.state.fsdp_plugin if self.is_fsdp_enabled else None)
            self.teacher.separate = self.accelerator.prepare_model(teacher_model, evaluation_mode=True)
        self._terms: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._skipped_rows = 0
        self._window_losses: list[torch.Tensor] = []  # batch losses since the last log, for a window with skips
        self._window_skips = False
        self.guard = RunGuard(
            args.max_bad_row_share,
            args.max_nonfinite_steps,
            lambda tensor: self.accelerator.reduce(tensor, reduction="sum"),
        )
        self.rejected_rows: list[Rejection] = []  # every process's rejected rows, gathered at the end of training
        self.teacher_cache_path = None
        if args.teacher_cache and train_dataset is not None:
            if self.is_fsdp_enabled:
                raise ValueError(
                    "teacher_cache is not supported with FSDP: the cache is keyed and filled with unsharded weights "
                    "before training, which FSDP's cpu-RAM-efficient loading leaves on the main process only; "
                    "leave teacher_cache unset (the teacher then runs sharded, with the student)"
                )
            self._attach_teacher_cache(core)

    def _build_student(self, model: str | nn.Module, args: SKDConfig, peft_config: Any) -> nn.Module:
        """The student: loaded when given by name, wrapped with ``peft_config``'s adapters (seeded first)."""
        if isinstance(model, str) or peft_config is not None:
            seed_everything(args)
        if isinstance(model, str):
            model = load_student(model, self.trust_remote_code, **self.model_init_kwargs)
        return model if peft_config is None else get_peft_model(model, peft_config)

    def _attach_teacher_cache(self, core: nn.Module) -> None:
        """Add the teacher-cache columns to the training split (computed once, then read from their cache file)."""
        collator = self.data_collator
        settings = settings_fingerprint(
            core.config, core.processor, self.args.max_length, self.args.image_pooling, collator.image_resize
        )
        runner = self.model if self.teacher.separate is None else self.teacher.separate
        with self.args.main_process_first(desc="teacher cache"):
            self.train_dataset, self.teacher_cache_path = teacher_columns(
                self.train_dataset,
                self.teacher,
                runner,
                collator,
                settings,
                self.args.teacher_cache,
                self.args.teacher_cache_batch_size,
                self.args.image_pooling,
                self.args.teacher_cache_num_workers,
            )

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Distillation loss of one batch; records its terms for logging while training, and flags the step when
        the teacher targets or the loss are not finite. The outputs are the batch's embeddings by name
        (`student_en`, `student_x`, `teacher_en`, ...)."""
        output = self.loss_fn(model, self.teacher, inputs)
        if model.training:
            self._skipped_rows += int(inputs.get("skipped_rows", 0))
            for name, value in output.terms.items():
                self._terms[name].append(value.detach())
            self._window_losses.append(output.loss.detach())
            if not torch.isfinite(output.embeddings.teacher_en).all():
                self.guard.flag("non-finite teacher targets")
            elif not torch.isfinite(output.loss):
                self.guard.flag("non-finite loss")
        return (output.loss, output.embeddings.as_dict()) if return_outputs else output.loss

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        """The Trainer's step (forward, backward), after counting the batch's rows; a batch whose rows were all
        bad (on any process, so that all processes stay in step) is skipped without a forward and counted."""
        self.guard.count_batch(inputs)
        if self.guard.any_process(bool(inputs.get("empty_batch")), self.args.device):
            self._skipped_rows += int(inputs.get("skipped_rows", 0))
            self.guard.skipped_batches += 1
            self._window_skips = True
            return torch.zeros((), device=self.args.device)
        return super().training_step(model, inputs, num_items_in_batch)

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, with :meth:`_guard_step` run before each of its steps."""
        optimizer = super().create_optimizer(model)
        if not getattr(optimizer, "_skd_guarded", False):
            optimizer.register_step_pre_hook(self._guard_step)
            optimizer._skd_guarded = True
        return optimizer

    def _guard_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Skip the coming optimizer step (every gradient set to None, so no weight or optimizer state moves)
        when a loss, teacher target or gradient of it is not finite on any process; stop the run on the guards'
        limits (:class:`~.guards.RunGuard`)."""
        parameters = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if self.guard.decide_step([p.grad for p in parameters], self.args.device):
            self._window_skips = True
            for parameter in parameters:
                parameter.grad = None

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """The Trainer's `train`, then every process's rejected rows gathered and reported by reason."""
        from accelerate.utils import gather_object

        result = super().train(*args, **kwargs)
        self.rejected_rows = gather_object(self.guard.rejected) if self.args.world_size > 1 else self.guard.rejected
        self.guard.report(self.rejected_rows)
        return result

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """The Trainer's `save_model` (checkpoints and the final model), refused for non-finite weights."""
        if self.guard.any_process(not all_finite(self.model.parameters()), self.args.device):
            raise TrainingStopped("the model has non-finite weights; it is not saved")
        super().save_model(output_dir, _internal_call)

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, Any, Any]:
        """Loss, `(student_en, student_x)` as predictions and `teacher_en` as labels (for `translation_metrics`)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        if prediction_loss_only:
            return loss.detach(), None, None
        predictions = (outputs["student_en"].detach().float(), outputs["student_x"].detach().float())
        return loss.detach(), predictions, outputs["teacher_en"].detach().float()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averaged loss terms since the last log (mean over processes), the skipped-row, skipped-batch
        and non-finite-step counts; in a window with skips, `loss` is the mean of the batch losses computed (NaN
        if one was NaN) rather than the Trainer's figure, which counts a skipped batch as 0 and hides a NaN."""
        if "loss" in logs and (self._terms or self._window_skips):
            for name, values in self._terms.items():
                mean = torch.stack(values).mean()
                logs[name] = round(float(self.accelerator.reduce(mean, reduction="mean")), 8)
            skipped = torch.tensor(self._skipped_rows, device=self.args.device)
            logs["skipped_rows"] = int(self.accelerator.reduce(skipped, reduction="sum"))
            logs["skipped_batches"] = self.guard.skipped_batches
            logs["nonfinite_steps"] = self.guard.nonfinite_steps
            if self._window_skips:
                mean = torch.stack(self._window_losses).mean() if self._window_losses else torch.tensor(float("nan"))
                logs["loss"] = float(self.accelerator.reduce(mean.to(self.args.device), reduction="mean"))
            self._terms.clear()
            self._window_losses.clear()
            self._window_skips = False
        super().log(logs, start_time)

    def save_student(self, save_adapter_only: bool = False) -> Path:
        """Save the trained student in ``args.output_dir`` as an XVLM2Vec folder (safetensors; no pickles).

        A LoRA student is saved as its adapter (``output_dir/adapter``) and, unless ``save_adapter_only``,
        merged into a fresh copy of its starting checkpoint saved in ``output_dir`` (the trainer needs the
        student by name for that). Everything is written into a staging folder that replaces ``output_dir`` as a
        whole when it is complete (the run's checkpoints, tiny inputs and logs are kept; ``outputs.py``), so a
        failed save leaves the previous output unchanged. The rejected rows go to ``rejected_rows.jsonl``.
        Returns the folder of the model.
        """
        output_dir = Path(self.args.output_dir)
        if self.is_fsdp_enabled:
            self.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        model = self.accelerator.unwrap_model(self.model)
        peft = isinstance(model, PeftModel)
        if not self.is_world_process_zero():  # the state dict is gathered here; the main process writes it
            self.save_model(str(output_dir / ADAPTER_FOLDER if peft else output_dir))
            return output_dir / ADAPTER_FOLDER if peft and save_adapter_only else output_dir
        keep = kept_entries(output_dir, self.args.teacher_cache)
        with atomic_output_dir(output_dir, OUTPUT_MARKER, keep=keep) as staging:
            target = staging / ADAPTER_FOLDER if peft else staging
            self.save_model(str(target))
            self._export_training_args(target)
            if peft and not save_adapter_only:
                self._save_merged(model, staging)
            self._export_training_args(staging)
            write_rejections(staging / REJECTED_ROWS, self.rejected_rows)
        return output_dir / ADAPTER_FOLDER if peft and save_adapter_only else output_dir

    def _save_merged(self, model: PeftModel, folder: Path) -> None:
        """Merge the saved adapter of ``folder`` into a fresh copy of the starting checkpoint; save it there."""
        if self.student_source is None:
            raise ValueError("merging the adapter needs the student by name (model='...'); or save_adapter_only")
        base = load_student(self.student_source, self.trust_remote_code, **self.model_init_kwargs)
        merged = PeftModel.from_pretrained(base, str(folder / ADAPTER_FOLDER)).merge_and_unload()
        merged.set_processor(model.get_base_model().processor)
        merged.config.matryoshka_dims = model.get_base_model().config.matryoshka_dims
        merged.save_pretrained(str(folder))

    def _export_training_args(self, folder: Path) -> None:
        """Replace the Trainer's pickled `training_args.bin` in `folder` by `training_args.json`."""
        pickled = folder / TRAINING_ARGS_BIN
        if pickled.is_file():
            pickled.unlink()
        (folder / "training_args.json").write_text(self.args.to_json_string())
