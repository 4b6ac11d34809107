"""`SKDTrainer`: a `transformers.Trainer` whose loss is self-knowledge distillation to an English teacher."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from xvlm2vec_common.model_folder import load_xvlm2vec_model

from .collator import ParallelCollator
from .config import TEACHER_SAME_CHECKPOINT, SKDConfig
from .losses import translation_metrics
from .speedups import apply_speedups
from .step import skd_loss
from .teacher import Teacher, refuse_unsynced_teacher
from .teacher_cache import settings_fingerprint, teacher_columns


class SKDTrainer(Trainer):
    """Trainer for self-knowledge distillation (xVLM2Vec) on a parallel corpus.

    The teacher (the student with its LoRA adapters off, or a separate frozen model) embeds the English
    side under `no_grad` in eval mode, or its embeddings come from the teacher cache; the student embeds the
    English and x sides (one concatenated forward by default); the loss is the weighted mean of
    `MSE(s(en), t(en))` and `MSE(s(x), t(en))` (plus the image terms with `image_loss`). Training logs
    `loss_en`, `loss_x` (and `loss_image_en`, `loss_image_x`) and `skipped_rows`; evaluation reports the MSE
    terms and x->en translation retrieval accuracy (`translation_metrics`).

    Args:
        model: the student, an `XVLM2VecModel` or a peft model wrapping one.
        args: an [`SKDConfig`].
        teacher_model: a separate frozen teacher; default: loaded from `args.teacher`, or the self-teacher.
        Other arguments are those of `transformers.Trainer`; the collator defaults to [`ParallelCollator`]
        and `compute_metrics` to [`translation_metrics`].
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(
        self,
        model: nn.Module,
        args: SKDConfig,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        teacher_model: nn.Module | None = None,
        data_collator: Any = None,
        compute_metrics: Any = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, SKDConfig):
            raise TypeError(f"args must be an SKDConfig, got {type(args).__name__}")
        core = model.get_base_model() if hasattr(model, "get_base_model") else model
        if teacher_model is None and args.teacher == TEACHER_SAME_CHECKPOINT:
            raise ValueError(
                f"teacher={TEACHER_SAME_CHECKPOINT!r}: load the frozen copy yourself and pass it as teacher_model "
                "(train.py loads it from --model_name_or_path)"
            )
        if teacher_model is None and args.teacher is not None:
            teacher_model = load_xvlm2vec_model(args.teacher, "--teacher", dtype=core.dtype)
        self.teacher = Teacher(model, teacher_model)
        if data_collator is None:
            data_collator = ParallelCollator(
                core.prepare_inputs,
                args.max_length,
                args.bad_rows,
                fused=args.fused_student_forward,
                image_resize=args.image_resize,
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
        self.teacher_cache_path = None
        if args.teacher_cache and train_dataset is not None:
            if self.is_fsdp_enabled:
                raise ValueError(
                    "teacher_cache is not supported with FSDP: the cache is keyed and filled with unsharded weights "
                    "before training, which FSDP's cpu-RAM-efficient loading leaves on the main process only; "
                    "leave teacher_cache unset (the teacher then runs sharded, with the student)"
                )
            self._attach_teacher_cache(core)

    def _attach_teacher_cache(self, core: nn.Module) -> None:
        """Add the teacher-cache columns to the training split (computed once, then read from their cache file)."""
        collator = self.data_collator
        settings = settings_fingerprint(
            core.config, core.processor, self.args.max_length, self.args.image_loss_pooling, collator.image_resize
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
                self.args.image_loss_pooling,
                self.args.teacher_cache_num_workers,
            )

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Distillation loss of one batch; records its terms for logging while training."""
        loss, terms, outputs = skd_loss(
            model,
            self.teacher,
            inputs,
            self.args.image_loss,
            self.args.en_loss_weight,
            self.args.x_loss_weight,
            self.args.image_loss_pooling,
        )
        skipped = inputs.get("skipped_rows", 0)
        if model.training:
            self._skipped_rows += int(skipped)
            for name, value in terms.items():
                self._terms[name].append(value.detach())
        return (loss, outputs) if return_outputs else loss

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
        """Add the averaged loss terms since the last log (mean over processes) and the skipped-row count."""
        if self._terms and "loss" in logs:
            for name, values in self._terms.items():
                mean = torch.stack(values).mean()
                logs[name] = round(float(self.accelerator.reduce(mean, reduction="mean")), 8)
            skipped = torch.tensor(self._skipped_rows, device=self.args.device)
            logs["skipped_rows"] = int(self.accelerator.reduce(skipped, reduction="sum"))
            self._terms.clear()
        super().log(logs, start_time)
