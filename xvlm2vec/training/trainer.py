"""`SKDTrainer`: a `transformers.Trainer` whose loss is self-knowledge distillation to an English teacher.

As TRL's trainers, it builds what it is given by name: ``SKDTrainer(model="path", args=SKDConfig(...),
peft_config=LoraConfig(...))`` loads the student, wraps it with the LoRA adapters and loads the teacher that
``args.teacher`` names, all through :mod:`.models`; :meth:`SKDTrainer.save_student` saves it as an
XVLM2Vec folder, the adapters merged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import enable_full_determinism, set_seed

from .collator import ParallelCollator
from .config import SKDConfig
from .loss import DistillationLoss
from .metrics import translation_metrics
from .models import check_peft_config, load_student, load_teacher
from .objectives import build_objective
from .speedups import apply_speedups
from .teacher import Teacher, refuse_unsynced_teacher
from .teacher_cache import settings_fingerprint, teacher_columns

logger = logging.getLogger(__name__)

ADAPTER_FOLDER = "adapter"
TRAINING_ARGS_BIN = "training_args.bin"


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
            build_objective(args), image_loss=args.image_loss, image_pooling=args.image_loss_pooling
        )
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
        """Distillation loss of one batch; records its terms for logging while training. The outputs are the
        batch's embeddings by name (`student_en`, `student_x`, `teacher_en`, ...)."""
        output = self.loss_fn(model, self.teacher, inputs)
        if model.training:
            self._skipped_rows += int(inputs.get("skipped_rows", 0))
            for name, value in output.terms.items():
                self._terms[name].append(value.detach())
        return (output.loss, output.embeddings.as_dict()) if return_outputs else output.loss

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

    def save_student(self, save_adapter_only: bool = False) -> Path:
        """Save the trained student in ``args.output_dir`` as an XVLM2Vec folder (safetensors; no pickles).

        A LoRA student is saved as its adapter (``output_dir/adapter``) and, unless ``save_adapter_only``,
        merged into a fresh copy of its starting checkpoint saved in ``output_dir`` (the trainer needs the
        student by name for that). Returns the folder of the model.
        """
        output_dir = Path(self.args.output_dir)
        if self.is_fsdp_enabled:
            self.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        model = self.accelerator.unwrap_model(self.model)
        target = output_dir / ADAPTER_FOLDER if isinstance(model, PeftModel) else output_dir
        self.save_model(str(target))
        if not self.is_world_process_zero():
            return target
        self._export_training_args(target)
        if target == output_dir or save_adapter_only:
            return target
        if self.student_source is None:
            raise ValueError("merging the adapter needs the student by name (model='...'); or save_adapter_only")
        base = load_student(self.student_source, self.trust_remote_code, **self.model_init_kwargs)
        merged = PeftModel.from_pretrained(base, str(target)).merge_and_unload()
        merged.set_processor(model.get_base_model().processor)
        merged.config.matryoshka_dims = model.get_base_model().config.matryoshka_dims
        merged.save_pretrained(str(output_dir))
        self._export_training_args(output_dir)
        return output_dir

    def _export_training_args(self, folder: Path) -> None:
        """Replace the Trainer's pickled `training_args.bin` in `folder` by `training_args.json`."""
        pickled = folder / TRAINING_ARGS_BIN
        if pickled.is_file():
            pickled.unlink()
        (folder / "training_args.json").write_text(self.args.to_json_string())
