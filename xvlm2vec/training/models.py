"""The student, its LoRA adapters and the teacher, built from names: the one place models of training load.

:class:`~.trainer.SKDTrainer` calls these when it is given names (``model="path"``, ``peft_config=``,
``args.teacher``), as TRL's trainers do; every model goes through :func:`load_xvlm2vec_model`, so a folder
mapping to its own code is refused unless ``trust_remote_code`` is set, for the student and the teacher alike.
"""

from __future__ import annotations

from typing import Any

import torch
from peft import get_peft_model
from torch import nn

from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.model_folder import load_xvlm2vec_model

from .config import TEACHER_SAME_CHECKPOINT

#: LoRA task types that fit an embedding model (TRL's default None, or feature extraction).
PEFT_TASK_TYPES = (None, "FEATURE_EXTRACTION")


def torch_dtype(name: str | None) -> torch.dtype | str:
    """`ModelConfig.dtype` (`auto`, `bfloat16`, `float32`, ...) as what `from_pretrained` takes."""
    if name in (None, "auto"):
        return "auto"
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"--dtype {name!r} is not a torch dtype")
    return value


def model_init_kwargs(model_args: Any) -> dict[str, Any]:
    """``from_pretrained`` arguments of TRL's ``ModelConfig``: ``--dtype``, ``--model_revision``,
    ``--attn_implementation``."""
    kwargs = {"dtype": torch_dtype(model_args.dtype), "revision": model_args.model_revision}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    return kwargs


def load_student(name_or_path: str, trust_remote_code: bool = False, **init_kwargs: Any) -> nn.Module:
    """An XVLM2Vec folder/repo, or a backbone checkpoint wrapped by ``from_backbone`` (``--model_name_or_path``)."""
    return load_xvlm2vec_model(name_or_path, "--model_name_or_path", trust_remote_code, **init_kwargs)


def check_peft_config(peft_config: Any) -> Any:
    """``peft_config`` itself; a LoRA task type other than feature extraction is a UsageError."""
    if peft_config is not None and peft_config.task_type not in PEFT_TASK_TYPES:
        raise UsageError(
            f"--lora_task_type {peft_config.task_type} does not fit an embedding model; use FEATURE_EXTRACTION"
        )
    return peft_config


def lora_config(model_args: Any) -> Any:
    """TRL's LoRA config of ``model_args`` (None without ``--use_peft``), checked by :func:`check_peft_config`."""
    from trl import get_peft_config

    return check_peft_config(get_peft_config(model_args))


def add_lora(model: nn.Module, model_args: Any) -> nn.Module:
    """Wrap the student with TRL's LoRA config when `--use_peft`; otherwise train all weights."""
    peft_config = lora_config(model_args)
    return model if peft_config is None else get_peft_model(model, peft_config)


def load_teacher(
    teacher: str | None,
    student_source: str | None,
    student_dtype: torch.dtype,
    trust_remote_code: bool = False,
    init_kwargs: dict[str, Any] | None = None,
) -> nn.Module | None:
    """The separate frozen teacher that ``teacher`` (``SKDConfig.teacher``) names, or None for the self-teacher.

    ``same_checkpoint``: a second copy of the student's starting checkpoint ``student_source``, loaded with the
    student's ``init_kwargs`` (the released full fine-tuning). A path or Hub id: that model, in the student's
    dtype ``student_dtype`` and the input convention of ``init_kwargs`` (``convention``, for a backbone). Both
    need ``trust_remote_code`` for a folder that maps to its own code.
    """
    if teacher is None:
        return None
    if teacher == TEACHER_SAME_CHECKPOINT:
        if student_source is None:
            raise ValueError(
                f"teacher={TEACHER_SAME_CHECKPOINT!r} needs the student as a name or path (model='...'), or load the "
                "frozen copy yourself and pass it as teacher_model"
            )
        return load_student(student_source, trust_remote_code, **(init_kwargs or {}))
    convention = (init_kwargs or {}).get("convention")
    return load_xvlm2vec_model(teacher, "--teacher", trust_remote_code, convention=convention, dtype=student_dtype)
