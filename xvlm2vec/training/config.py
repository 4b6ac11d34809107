"""`SKDConfig`: the training arguments of self-knowledge distillation."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from modeling_xvlm2vec.configuration_xvlm2vec import IMAGE_POOLINGS
from xvlm2vec_common.deprecation import move_renamed_field

from .objectives import MATRYOSHKA_BASES, OBJECTIVES, build_objective
from .speedups import ADAPTER_DTYPES

BAD_ROW_POLICIES = ("skip", "error")
#: `teacher` value for a separate frozen teacher loaded from the student's own starting checkpoint (the release).
TEACHER_SAME_CHECKPOINT = "same_checkpoint"


@dataclass
class SKDConfig(TrainingArguments):
    r"""Configuration of [`SKDTrainer`]: `transformers.TrainingArguments` plus the distillation settings.

    On parallel pairs (English text, the same text in language x, optional shared image) the student learns

        loss = (w_en * MSE(s(en), t(en)) + w_x * MSE(s(x), t(en))) / (w_en + w_x)

    on un-normalised last-token embeddings; with `image_loss` the two image terms (mean-pooled hidden states
    of the image prefix) join and all four are averaged.

    Parameters:
        teacher (`str` or `None`, defaults to `None`):
            `None`: the self-teacher, i.e. the student's own base weights with its LoRA adapters switched off
            (peft's `disable_adapter()`); one model copy in memory, needs LoRA. `"same_checkpoint"`: a separate
            frozen copy loaded from the student's starting checkpoint (`--model_name_or_path`, by `train.py`), as
            the released full fine-tuning did. A path or Hub id: a separate frozen teacher, an XVLM2Vec folder
            (loaded with the installed classes) or a supported backbone checkpoint; one whose folder maps to its
            own code needs `--trust_remote_code true` (`xvlm2vec_common.model_folder.load_xvlm2vec_model`).
        image_loss (`bool`, defaults to `False`):
            Add the paper's image terms (ablation): MSE between mean-pooled hidden states of the image
            prefix, student(en) vs teacher(en) and student(x) vs teacher(en); the four terms are averaged.
        image_pooling (`str` or `None`, defaults to `None`, i.e. `"prefix"`):
            What the image terms pool (`IMAGE_POOLINGS`). `prefix` (as released): the mean over the tokens up to
            and including the last BOS (Phi-3.5-V: BOS + image tokens + the BOS after them; a text-only row: its
            first BOS; other backbones end the prefix at their image segment's last token). `image_tokens`: the
            mean over the image placeholder tokens only (a project variant; rows without an image give zero vectors).
        image_loss_pooling (`str` or `None`, defaults to `None`):
            Deprecated old name of `image_pooling` (YAML key and flag), accepted with a `FutureWarning` for one
            release and moved to `image_pooling` (then set back to `None`); giving both is refused.
        image_resize (`list[int]` or `None`, defaults to `None`):
            `[width, height]`: resize every training image to this size (PIL's default filter) before it is
            converted to RGB and processed, as the released run did (`[1344, 1344]`). `None` keeps images as they are.
        en_loss_weight (`float`, defaults to `1.0`):
            Weight of the English term `MSE(s(en), t(en))` (keeps English where it was).
        x_loss_weight (`float`, defaults to `1.0`):
            Weight of the cross-lingual term `MSE(s(x), t(en))` (pulls language x onto English).
        languages (`list[str]` or `None`, defaults to `None`):
            Keep only parallel rows whose `lang` is one of these (e.g. `["it", "es", "fr", "de"]`); `None` keeps all.
        max_length (`int` or `None`, defaults to `None`):
            Longest tokenised row (image tokens included). Longer rows are handled by `bad_rows`; nothing is
            truncated (truncation would cut the last token, which is the embedding).
        bad_rows (`str`, defaults to `"skip"`):
            What to do with a bad parallel row (unreadable image, empty text, longer than `max_length`, image
            tag on one side only): `"skip"` drops it with a logged warning and counts it (`skipped_rows` in the
            logs), `"error"` raises `ValueError` naming the row.
        fused_student_forward (`bool`, defaults to `True`):
            Run the student's English and x sides as one concatenated, padded batch (one forward). `False` runs
            them separately, as the reference implementation does.
        teacher_cache (`str` or `None`, defaults to `None`):
            Folder for cached teacher English embeddings. When set, the teacher embeds the training split's
            English side once, as a `Dataset.map` adding teacher-embedding columns whose cache file in this folder
            is named by a fingerprint of the teacher weights, the model/processor configuration and code,
            `max_length`, image pooling and resize, and the dataset's fingerprint, so a changed teacher or dataset
            never reuses a stale file, and later epochs and runs skip the teacher forward.
            Single process or DDP only (refused under FSDP: it is filled with unsharded weights before training).
        teacher_cache_batch_size (`int`, defaults to `16`):
            Batch size of the one-off teacher pass that fills the cache.
        teacher_cache_num_workers (`int`, defaults to `0`):
            Threads that decode images and run the processor for the next batches of that pass while the teacher
            embeds (0: one after the other); the cached columns do not depend on it.
        objective (`str`, defaults to `"mse"`):
            The distillation objective (`xvlm2vec.training.objectives`, table in docs/training.md): `mse` (as
            released), `matryoshka` (a base objective over nested prefixes), `similarity_kl` (in-batch similarity
            distributions, UniME) or `mse_infonce` (MSE plus InfoNCE between the x and English sides).
        matryoshka_dims (`list[int]` or `None`, defaults to `None`):
            With `matryoshka`: the prefix sizes (e.g. `[64, 32, 16]`, the full width included if it should count);
            recorded in the saved model's config as `matryoshka_dims`.
        matryoshka_weights (`list[float]` or `None`, defaults to `None`):
            With `matryoshka`: one weight per size (default 1 each).
        matryoshka_base (`str`, defaults to `"mse"`):
            With `matryoshka`: the objective applied to each prefix, `mse` or `similarity_kl`.
        similarity_temperature (`float`, defaults to `0.05`):
            Softmax temperature of `similarity_kl` (cosine similarity / temperature).
        infonce_weight (`float`, defaults to `0.1`):
            With `mse_infonce`: the weight of the InfoNCE term added to the MSE objective.
        infonce_temperature (`float`, defaults to `0.05`):
            With `mse_infonce`: the InfoNCE temperature (cosine similarity / temperature).
        max_bad_row_share (`float`, defaults to `0.5`):
            With `bad_rows: skip`, stop the run (nothing saved) when more than this share of the rows seen so far
            (all processes, checked at every optimizer step from 32 rows on) were bad. `1.0` never stops.
        max_nonfinite_steps (`int`, defaults to `5`):
            An optimizer step whose loss, teacher targets or gradients are not finite is skipped (counted as
            `nonfinite_steps`, with a warning); the run stops after this many skipped steps in a row.

    Speed levers (`xvlm2vec.training.speedups`, applied by `apply_speedups`; each default is the plain step):

        adapter_dtype (`str`, defaults to `"float32"`):
            `"bfloat16"`: LoRA adapters compute in bf16 (no float32 casts of the activations) while their weights
            stay float32 master weights that AdamW updates, so small updates are not rounded away. Needs LoRA.
        compile_decoder_layers (`bool`, defaults to `False`):
            Regional `torch.compile` of each decoder layer, in place (state dict and saved folders unchanged).
        compile_backend (`str`, defaults to `"inductor"`) / compile_mode (`str` or `None`, defaults to `None`):
            `torch.compile`'s backend and mode for `compile_decoder_layers`.
        liger_kernels (`bool`, defaults to `False`):
            Liger's fused RMSNorm, RoPE and SwiGLU in the Phi-3.5-V, Qwen2-VL and Qwen2.5-VL decoders. Needs
            `liger-kernel` installed and a CUDA device (refused otherwise).
        length_grouping (`bool`, defaults to `False`):
            Group batches by length with image rows apart from text-only rows (less padding): sets
            `train_sampling_strategy` to `group_by_length` and its lengths to characters plus a large constant for
            image rows. Activation checkpointing is chosen with transformers' own `activation_checkpointing` and
            `activation_checkpointing_kwargs: {every_n_layers: N}` (selective).
    """

    teacher: str | None = field(
        default=None,
        metadata={
            "help": "None: self-teacher (LoRA adapters switched off). 'same_checkpoint': a separate frozen copy of "
            "--model_name_or_path. A path/Hub id: a separate frozen teacher."
        },
    )
    image_loss: bool = field(
        default=False, metadata={"help": "Add the two image-prefix MSE terms (paper's ablation)."}
    )
    image_pooling: str | None = field(
        default=None,
        metadata={
            "help": "Image-term pooling: 'prefix' (as released; the default) or 'image_tokens'.",
            "choices": IMAGE_POOLINGS,
        },
    )
    image_loss_pooling: str | None = field(
        default=None,
        metadata={"help": "Deprecated old name of --image_pooling (FutureWarning).", "choices": IMAGE_POOLINGS},
    )
    image_resize: list[int] | None = field(
        default=None, metadata={"help": "Resize training images to WIDTH HEIGHT first (released run: 1344 1344)."}
    )
    en_loss_weight: float = field(default=1.0, metadata={"help": "Weight of MSE(student(en), teacher(en))."})
    x_loss_weight: float = field(default=1.0, metadata={"help": "Weight of MSE(student(x), teacher(en))."})
    languages: list[str] | None = field(
        default=None, metadata={"help": "Languages x to train on (the `lang` column); None keeps every row."}
    )
    max_length: int | None = field(
        default=None, metadata={"help": "Longest tokenised row; longer rows are bad rows (never truncated)."}
    )
    bad_rows: str = field(
        default="skip",
        metadata={"help": "Bad parallel rows: 'skip' (counted, logged) or 'error'.", "choices": BAD_ROW_POLICIES},
    )
    fused_student_forward: bool = field(
        default=True, metadata={"help": "One concatenated student forward for the English and x sides."}
    )
    teacher_cache: str | None = field(
        default=None, metadata={"help": "Folder caching the teacher's English embeddings of the training split."}
    )
    teacher_cache_batch_size: int = field(default=16, metadata={"help": "Batch size of the teacher-cache pass."})
    teacher_cache_num_workers: int = field(
        default=0, metadata={"help": "Threads preparing the teacher-cache pass's next batches (0: none)."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the collator needs the parallel corpus columns."}
    )
    objective: str = field(
        default="mse",
        metadata={"help": "Distillation objective (docs/training.md); 'mse' as released.", "choices": OBJECTIVES},
    )
    matryoshka_dims: list[int] | None = field(
        default=None, metadata={"help": "matryoshka: the prefix sizes trained (recorded in the saved config)."}
    )
    matryoshka_weights: list[float] | None = field(
        default=None, metadata={"help": "matryoshka: one weight per size (default 1 each)."}
    )
    matryoshka_base: str = field(
        default="mse",
        metadata={"help": "matryoshka: the objective over each prefix.", "choices": MATRYOSHKA_BASES},
    )
    similarity_temperature: float = field(default=0.05, metadata={"help": "similarity_kl: softmax temperature."})
    infonce_weight: float = field(default=0.1, metadata={"help": "mse_infonce: weight of the InfoNCE term."})
    infonce_temperature: float = field(default=0.05, metadata={"help": "mse_infonce: InfoNCE temperature."})
    max_bad_row_share: float = field(
        default=0.5, metadata={"help": "Stop when more than this share of the rows seen are bad (1.0: never)."}
    )
    max_nonfinite_steps: int = field(
        default=5, metadata={"help": "Stop after this many optimizer steps in a row skipped for non-finite values."}
    )

    # ---- speed levers (xvlm2vec.training.speedups; the defaults are the plain step) ----
    adapter_dtype: str = field(
        default="float32",
        metadata={
            "help": "LoRA compute dtype: 'bfloat16' computes adapters in bf16 with float32 master weights.",
            "choices": ADAPTER_DTYPES,
        },
    )
    compile_decoder_layers: bool = field(
        default=False, metadata={"help": "Regional torch.compile of each decoder layer (in place)."}
    )
    compile_backend: str = field(default="inductor", metadata={"help": "torch.compile backend of the layers."})
    compile_mode: str | None = field(default=None, metadata={"help": "torch.compile mode of the layers."})
    liger_kernels: bool = field(
        default=False, metadata={"help": "Liger's fused RMSNorm/RoPE/SwiGLU in the decoder (CUDA, liger-kernel)."}
    )
    length_grouping: bool = field(
        default=False, metadata={"help": "Length-grouped batches with image rows apart from text-only rows."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._resolve_image_pooling()
        if self.image_resize is not None:
            self.image_resize = [int(side) for side in self.image_resize]
            if len(self.image_resize) != 2 or min(self.image_resize) < 1:
                raise ValueError(f"image_resize must be [width, height] with positive sides, got {self.image_resize}")
        if self.bad_rows not in BAD_ROW_POLICIES:
            raise ValueError(f"bad_rows must be one of {BAD_ROW_POLICIES}, got {self.bad_rows!r}")
        if self.en_loss_weight < 0 or self.x_loss_weight < 0 or self.en_loss_weight + self.x_loss_weight == 0:
            raise ValueError(
                f"en_loss_weight and x_loss_weight must be >= 0 and not both 0, "
                f"got {self.en_loss_weight}, {self.x_loss_weight}"
            )
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.remove_unused_columns:
            raise ValueError("remove_unused_columns must be False: the collator reads the parallel corpus columns")
        self._check_objective()
        self._check_counts()
        if isinstance(self.languages, str):
            self.languages = [lang.strip() for lang in self.languages.split(",") if lang.strip()]
        self._check_speed_levers()

    def _resolve_image_pooling(self) -> None:
        """Take the deprecated `image_loss_pooling` as `image_pooling` (FutureWarning; both given is refused),
        default to `prefix` (as released) and refuse a pooling not in `IMAGE_POOLINGS`."""
        move_renamed_field(self, "image_loss_pooling", "image_pooling", stacklevel=5)  # the SKDConfig(...) call
        if self.image_pooling is None:
            self.image_pooling = "prefix"
        if self.image_pooling not in IMAGE_POOLINGS:
            raise ValueError(f"image_pooling must be one of {IMAGE_POOLINGS}, got {self.image_pooling!r}")

    def _check_speed_levers(self) -> None:
        """Refuse speed-lever values that cannot work; `length_grouping` selects the length-grouped sampler."""
        if self.adapter_dtype not in ADAPTER_DTYPES:
            raise ValueError(f"adapter_dtype must be one of {ADAPTER_DTYPES}, got {self.adapter_dtype!r}")
        if self.length_grouping:
            if self.train_sampling_strategy not in ("random", "group_by_length"):
                raise ValueError(
                    f"length_grouping uses the group_by_length sampler; train_sampling_strategy is "
                    f"{self.train_sampling_strategy!r}"
                )
            self.train_sampling_strategy = "group_by_length"

    def _check_objective(self) -> None:
        """Refuse an unknown objective, or settings that do not fit it (ValueError naming the field)."""
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.matryoshka_base not in MATRYOSHKA_BASES:
            raise ValueError(f"matryoshka_base must be one of {MATRYOSHKA_BASES}, got {self.matryoshka_base!r}")
        if (self.objective == "matryoshka") != bool(self.matryoshka_dims):
            raise ValueError("objective matryoshka needs matryoshka_dims, and matryoshka_dims needs that objective")
        if self.matryoshka_dims:
            self.matryoshka_dims = [int(dim) for dim in self.matryoshka_dims]
        if self.image_loss and self.objective != "mse":
            raise ValueError(f"image_loss adds MSE terms: it needs objective mse, got {self.objective!r}")
        build_objective(self)  # the objective's own checks (sizes, weights, temperatures)

    def _check_counts(self) -> None:
        """Refuse sizes and limits that cannot train (ValueError naming the argument)."""
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "teacher_cache_batch_size",
            "max_nonfinite_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or (self.max_steps < 0 and self.num_train_epochs <= 0):
            raise ValueError(
                f"--max_steps {self.max_steps} --num_train_epochs {self.num_train_epochs} trains nothing: give "
                "--max_steps N > 0, or --max_steps -1 with --num_train_epochs > 0"
            )
        if not 0 <= self.max_bad_row_share <= 1:
            raise ValueError(f"--max_bad_row_share must be in [0, 1], got {self.max_bad_row_share}")
