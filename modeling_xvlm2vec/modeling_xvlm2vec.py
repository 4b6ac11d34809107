"""xVLM2Vec: a vision-language model used as an embedding model (last-token pooling, VLM2Vec style)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoProcessor, BatchFeature, PreTrainedModel
from transformers.utils import ModelOutput

from .backbone_llava_next import LlavaNextBackbone  # noqa: F401  (importing registers the adapter)
from .backbone_phi3_v import Phi3VBackbone  # noqa: F401
from .backbone_qwen2_vl import Qwen2VLBackbone  # noqa: F401
from .backbones import get_backbone
from .configuration_xvlm2vec import IMAGE_POOLINGS, XVLM2VecConfig
from .conventions import DEFAULT_CONVENTION, Convention, get_convention
from .instructions import compose_prompt
from .prefetch import CopyPool, pin_tensors, prefetch
from .processing_xvlm2vec import ImageInput, format_prompts, prepare_inputs
from .sentence_xvlm2vec import write_sentence_transformers_files

logger = logging.getLogger(__name__)


@dataclass
class XVLM2VecOutput(ModelOutput):
    """Output of [`XVLM2VecModel`].

    Args:
        embeddings (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            Pooled embeddings (L2-normalised when `normalize` is on).
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, sequence_length, hidden_size)`):
            The backbone's last hidden state.
        image_embeddings (`torch.FloatTensor` of shape `(batch_size, hidden_size)`, *optional*):
            The image-loss pooling of each row (see `IMAGE_POOLINGS`), returned with `return_image_embeddings=True`.
    """

    embeddings: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    image_embeddings: torch.FloatTensor | None = None


def prefix_mean(
    hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, end_ids: Sequence[int]
) -> torch.Tensor:
    """Mean of [B, L, H] hidden states over each row's real tokens up to and including its last `end_ids` token.

    A row without such a token keeps its first real token only. Padding (either side) is never counted.
    """
    real = attention_mask.bool()
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    is_end = torch.isin(input_ids, torch.tensor(list(end_ids), device=input_ids.device)) & real
    last_end = torch.where(is_end, positions, -1).max(-1).values
    first_real = real.long().argmax(-1)
    end = torch.where(last_end >= 0, last_end, first_real)
    weights = ((positions <= end[:, None]) & real).to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool [B, L, H] hidden states over real tokens: the last one (either padding side) or their mean."""
    mask = attention_mask.to(hidden.dtype)
    if pooling == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    last = attention_mask.shape[1] - 1 - attention_mask.flip(-1).long().argmax(-1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


@dataclass
class EncodePlan:
    """The batches of one `encode` call: prompts and images by input row, the row order they run in, and the
    chat convention's system prompt (None: the model's default)."""

    prompts: list[str | None]
    images: list[ImageInput]
    order: list[int]
    batch_size: int
    single: bool = False
    system_prompt: str | None = None

    @property
    def batches(self) -> list[list[int]]:
        """Input rows of each batch, in run order."""
        return [self.order[start : start + self.batch_size] for start in range(0, len(self.order), self.batch_size)]

    def assemble(self, chunks: list[torch.Tensor]) -> torch.Tensor:
        """The batches' embeddings [N, D] back in input order (one row [D] for a single input)."""
        embeddings = torch.empty(len(self.order), chunks[0].shape[-1])
        embeddings[torch.tensor(self.order)] = torch.cat(chunks)
        return embeddings[0] if self.single else embeddings


class XVLM2VecPreTrainedModel(PreTrainedModel):
    """Common base: configuration class, checkpointing and weight initialisation delegated to the backbone."""

    config_class = XVLM2VecConfig
    base_model_prefix = "xvlm2vec"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _keys_to_ignore_on_load_unexpected = [r"^lm_head\."]

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Initialise like the wrapped backbone does."""
        backbone = getattr(self, "model", None)
        if isinstance(backbone, PreTrainedModel):
            backbone._init_weights(module)


class XVLM2VecModel(XVLM2VecPreTrainedModel):
    """Embedding model over a vision-language backbone (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-Next, Phi-3.5-V).

    `forward` takes what the backbone's processor returns; `encode` takes texts and/or images (and an
    instruction) like sentence-transformers' `encode`. The backbone's base model (no LM head) is held as
    `model`, so parameter names equal the original checkpoints' (`model.*`).
    """

    def __init__(self, config: XVLM2VecConfig, backbone_model: torch.nn.Module | None = None):
        super().__init__(config)
        self.adapter = get_backbone(config.backbone_config.model_type)
        self.model = backbone_model if backbone_model is not None else self.adapter.build_model(config.backbone_config)
        self._processor = None
        self._processor_copies: CopyPool | None = None
        self.post_init()
        # FSDP wraps by these class names: keep the backbone's, limited to classes this model really has.
        present = {type(module).__name__ for module in self.model.modules()}
        declared = getattr(self.model, "_no_split_modules", None) or []
        self._no_split_modules = sorted(name for name in declared if name in present)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_backbone(
        cls,
        model_name_or_path: str | None = None,
        pooling: str = "last",
        normalize: bool = True,
        padding_side: str = "right",
        convention: str = DEFAULT_CONVENTION,
        system_prompt: str | None = None,
        **load_kwargs: Any,
    ) -> XVLM2VecModel:
        """Build an embedding model from an existing vision-language checkpoint (Hub id or local folder).

        The processor is loaded from the same place. `convention` is the input convention of the published
        embedder the checkpoint is (`vlm2vec`, `vlm2vec_v2`, `gme`, `qwen3_vl_embedding`; docs/teachers.md),
        `system_prompt` its default system instruction (chat conventions). `load_kwargs` go to the backbone's
        `from_pretrained` (`dtype`, `revision`, `attn_implementation`, `trust_remote_code`, ...); `revision` and
        `trust_remote_code` also to the processor's and configuration's. The old keyword `name_or_path` is
        accepted with a `FutureWarning` until the next release.
        """
        if "name_or_path" in load_kwargs:
            warnings.warn(
                "from_backbone(name_or_path=) is now model_name_or_path=; the old name goes in the next release",
                FutureWarning,
                stacklevel=2,
            )
            model_name_or_path = load_kwargs.pop("name_or_path")
        if model_name_or_path is None:
            raise TypeError("from_backbone() needs model_name_or_path (a Hub id or a local folder)")
        source = {key: load_kwargs[key] for key in ("revision", "trust_remote_code") if key in load_kwargs}
        processor = AutoProcessor.from_pretrained(model_name_or_path, **source)
        backbone_config = AutoConfig.from_pretrained(model_name_or_path, **source)
        backbone = get_backbone(backbone_config.model_type).load_pretrained(model_name_or_path, **load_kwargs)
        config = XVLM2VecConfig(
            backbone_config=backbone.config,
            pooling=pooling,
            normalize=normalize,
            padding_side=padding_side,
            convention=convention,
            system_prompt=system_prompt,
        )
        model = cls(config, backbone_model=backbone)
        model.set_processor(processor)
        return model

    # ----------------------------------------------------------------- processor
    @property
    def processor(self) -> Any:
        """The backbone's processor: set with `set_processor`, else loaded from the model's folder or repo.

        The folder's processor code runs only when this model's own code came from that folder (loaded
        with `trust_remote_code=True`); with the installed package its registered classes are used.
        """
        if self._processor is None:
            source = self.config.name_or_path
            if not source:
                raise ValueError("this model has no processor: call model.set_processor(processor) first")
            remote = type(self).__module__.startswith("transformers_modules.")
            self._processor = AutoProcessor.from_pretrained(source, trust_remote_code=remote)
        return self._processor

    @property
    def processor_copies(self) -> CopyPool:
        """Private copies of `processor` for the threads that prepare batches ahead (`encode(num_workers=...)`)."""
        if self._processor_copies is None or self._processor_copies.original is not self.processor:
            self._processor_copies = CopyPool(self.processor)
        return self._processor_copies

    def set_processor(self, processor: Any) -> None:
        """Attach the backbone's processor (saved alongside the weights by `save_pretrained`)."""
        self._processor = processor
        self._processor_copies = None

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """Save config, code (`auto_map`), safetensors weights, the processor, and the
        sentence-transformers files (`modules.json`, `config_sentence_transformers.json` with the
        instructions as named prompts), so the folder also loads with `SentenceTransformer`.

        The processor is the one set, else the one of the folder or repo the model was loaded from
        (loaded now, before the weights are written, so a model saved right after loading is complete)."""
        main_process = kwargs.get("is_main_process", True)
        has_processor = self._processor is not None or bool(self.config.name_or_path)
        processor = self.processor if main_process and has_processor else None
        kwargs.setdefault("safe_serialization", True)
        super().save_pretrained(save_directory, *args, **kwargs)
        if not main_process:
            return
        if processor is not None:
            processor.save_pretrained(save_directory)
        write_sentence_transformers_files(save_directory, self.config.instructions)

    @property
    def convention(self) -> Convention:
        """The input convention of `config.convention` (prompt template, image placement and positions)."""
        return get_convention(self.config.convention)

    def prepare_inputs(
        self,
        texts: Sequence[str],
        images: Sequence[ImageInput],
        max_length: int | None = None,
        row_ids: Sequence[int] | None = None,
        system_prompt: str | None = None,
        processor: Any = None,
    ) -> BatchFeature:
        """Validate (text, image) rows, put them in the model's convention and build one padded batch with the
        backbone's processor (or ``processor``: a copy of it, see `processor_copies`).

        ``system_prompt`` is a chat convention's system instruction (default: `config.system_prompt`, else the
        convention's own). Errors name rows by ``row_ids`` (default: their positions in this call).
        """
        return prepare_inputs(
            processor if processor is not None else self.processor,
            texts,
            images,
            self.config.image_tag,
            self.config.padding_side,
            max_length=max_length,
            row_ids=row_ids,
            convention=self.convention,
            system_prompt=system_prompt if system_prompt is not None else self.config.system_prompt,
        )

    def format_prompts(self, texts: Sequence[str | None], images: Sequence[ImageInput]) -> list[str]:
        """The exact prompt strings `encode(texts, images)` hands the backbone's processor (instruction-free rows,
        the model's convention and default system prompt): what another engine must tokenize to match it."""
        return format_prompts(
            [compose_prompt(None, text) for text in texts],
            images,
            self.config.image_tag,
            convention=self.convention,
            system_prompt=self.config.system_prompt,
        )

    # ----------------------------------------------------------------- forward
    def get_input_embeddings(self) -> torch.nn.Module:
        """The decoder's token embeddings."""
        return self.model.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor,
        normalize: bool | None = None,
        return_image_embeddings: bool = False,
        image_pooling: str = "prefix",
        **backbone_inputs: Any,
    ) -> XVLM2VecOutput:
        """Embed a processed batch.

        Args:
            input_ids, attention_mask: token ids and mask as returned by the backbone's processor.
            normalize: L2-normalise `embeddings` (default: `config.normalize`); training passes `False`.
            return_image_embeddings: also return the image-loss pooling of each row (`image_embeddings`).
            image_pooling: `prefix` (as released: the mean through the last image-prefix end token, e.g. BOS +
                image tokens + BOS on Phi-3.5-V) or `image_tokens` (the mean over the image placeholders only).
            backbone_inputs: the processor's vision outputs (`pixel_values`, `image_grid_thw`, `image_sizes`, ...).
        """
        if input_ids.dim() != 2 or attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"input_ids and attention_mask must both be [batch, length], got {tuple(input_ids.shape)} "
                f"and {tuple(attention_mask.shape)}"
            )
        sequential = self.convention.positions == "sequential"
        hidden = self.adapter.forward(
            self.model, input_ids, attention_mask, sequential_positions=sequential, **backbone_inputs
        )
        embeddings = pool(hidden, attention_mask, self.config.pooling)
        if self.config.normalize if normalize is None else normalize:
            embeddings = F.normalize(embeddings, dim=-1)
        image_embeddings = None
        if return_image_embeddings:
            image_embeddings = self.image_pool(hidden, input_ids, attention_mask, image_pooling)
        return XVLM2VecOutput(embeddings=embeddings, last_hidden_state=hidden, image_embeddings=image_embeddings)

    def image_pool(
        self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_pooling: str
    ) -> torch.Tensor:
        """The image-loss pooling `image_pooling` (one of `IMAGE_POOLINGS`) of [B, L, H] hidden states."""
        backbone_config = self.config.backbone_config
        if image_pooling == "prefix":
            return prefix_mean(hidden, input_ids, attention_mask, self.adapter.image_prefix_end_ids(backbone_config))
        if image_pooling == "image_tokens":
            image_mask = (input_ids == self.adapter.image_token_id(backbone_config)) & attention_mask.bool()
            weights = image_mask.to(hidden.dtype).unsqueeze(-1)
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        raise ValueError(f"image_pooling must be one of {IMAGE_POOLINGS}, got {image_pooling!r}")

    # ----------------------------------------------------------------- sentence-transformers style API
    def encode(
        self,
        texts: Sequence[str | None] | str | None = None,
        images: Sequence[ImageInput] | ImageInput = None,
        instruction: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        normalize_embeddings: bool = True,
        convert_to_tensor: bool = False,
        system_prompt: str | None = None,
        num_workers: int = 0,
        truncate_dim: int | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts, images, or text+image pairs, optionally after an instruction.

        Rows are sorted by modality and length to cut padding, run in batches under inference mode and
        returned in input order, as a float32 numpy array [N, D] (or a tensor with `convert_to_tensor`).
        The instruction may hold `{text}` (filled with each text) and the image tag `<|image_1|>`. A row
        with an image whose prompt has no tag gets `<|image_1|>\\n` at the start (VLM2Vec's place); a row
        with an image and no text or instruction is embedded as the image tag alone. Each row is then put in
        the model's convention (`config.convention`); `system_prompt` is a chat convention's system instruction
        (Qwen3-VL-Embedding's and GME's `instruction`; default: `config.system_prompt`, else the convention's).
        `num_workers` threads load images and run the processor for the next batches while the model runs
        (0: one after the other, in this thread); on a GPU their batches are pinned and copied without
        blocking. The embeddings are the same for any `num_workers`. `truncate_dim` keeps the first components
        of each embedding (renormalised with `normalize_embeddings`), as sentence-transformers' `truncate_dim`;
        widths a model was trained to be cut to are in `config.matryoshka_dims`.
        """
        if truncate_dim is not None and not 1 <= truncate_dim <= self.config.hidden_size:
            raise ValueError(f"truncate_dim must be in 1..{self.config.hidden_size}, got {truncate_dim}")
        plan = self.plan_encode(texts, images, instruction, batch_size, system_prompt)
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() <= logging.INFO
        batches = prefetch(lambda rows: self.prepare_encode_batch(plan, rows, num_workers), plan.batches, num_workers)
        was_training = self.training
        self.eval()
        try:
            chunks = [
                truncated(
                    self.embed_batch(batch, normalize_embeddings and truncate_dim is None),
                    truncate_dim,
                    normalize_embeddings,
                )
                for batch in tqdm(batches, total=len(plan.batches), desc="encode", disable=not show_progress_bar)
            ]
        finally:
            self.train(was_training)
        embeddings = plan.assemble(chunks)
        return embeddings if convert_to_tensor else embeddings.numpy()

    def plan_encode(
        self,
        texts: Sequence[str | None] | str | None,
        images: Sequence[ImageInput] | ImageInput,
        instruction: str | None,
        batch_size: int,
        system_prompt: str | None = None,
    ) -> EncodePlan:
        """Check `encode`'s inputs and fix its batches: prompts, and rows sorted by modality and length."""
        single = isinstance(texts, str) or (
            texts is None and images is not None and not isinstance(images, (list, tuple))
        )
        texts = [texts] if isinstance(texts, str) else texts
        images = [images] if images is not None and not isinstance(images, (list, tuple)) else images
        if texts is None and images is None:
            raise ValueError("no inputs: give texts, images or both")
        count = len(texts) if texts is not None else len(images)
        texts = list(texts) if texts is not None else [None] * count
        images = list(images) if images is not None else [None] * count
        if len(texts) != len(images):
            raise ValueError(f"texts and images must have the same length, got {len(texts)} and {len(images)}")
        if count == 0:
            raise ValueError("no inputs: texts and images are empty")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        prompts = [compose_prompt(instruction, text) for text in texts]
        order = sorted(range(count), key=lambda i: (images[i] is None, -len(prompts[i])))
        return EncodePlan(prompts, images, order, batch_size, single, system_prompt)

    def prepare_encode_batch(self, plan: EncodePlan, rows: list[int], num_workers: int = 0) -> BatchFeature:
        """The processed batch of `plan`'s `rows` (CPU). With `num_workers > 0` (called from a worker thread) it
        uses a private copy of the processor, and its tensors are pinned when the model is on a GPU."""
        prompts, images = [plan.prompts[i] for i in rows], [plan.images[i] for i in rows]
        if num_workers == 0:
            return self.prepare_inputs(prompts, images, row_ids=rows, system_prompt=plan.system_prompt)
        with self.processor_copies.borrow() as processor:
            batch = self.prepare_inputs(
                prompts, images, row_ids=rows, system_prompt=plan.system_prompt, processor=processor
            )
        return pin_tensors(batch) if self.device.type == "cuda" else batch

    def embed_batch(self, batch: BatchFeature, normalize: bool = True) -> torch.Tensor:
        """Embeddings (float32, CPU) of one processed batch, under inference mode (the caller sets eval mode)."""
        with torch.inference_mode():
            batch = batch.to(self.device, non_blocking=True)
            if "pixel_values" in batch:
                batch["pixel_values"] = batch["pixel_values"].to(self.dtype)
            return self(**batch, normalize=normalize).embeddings.float().cpu()

    @staticmethod
    def similarity(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Cosine similarity matrix [len(a), len(b)] (a dot product for normalised embeddings)."""
        as_numpy = isinstance(a, np.ndarray)
        a_t = torch.as_tensor(a, dtype=torch.float32)
        b_t = torch.as_tensor(b, dtype=torch.float32)
        a_t = F.normalize(a_t.reshape(-1, a_t.shape[-1]), dim=-1)
        b_t = F.normalize(b_t.reshape(-1, b_t.shape[-1]), dim=-1)
        scores = a_t @ b_t.T
        return scores.numpy() if as_numpy else scores


def truncated(embeddings: torch.Tensor, dim: int | None, normalize: bool) -> torch.Tensor:
    """The first `dim` components of each row (all with `dim=None`), L2-normalised again with `normalize`."""
    if dim is None:
        return embeddings
    embeddings = embeddings[..., :dim]
    return F.normalize(embeddings, dim=-1) if normalize else embeddings


XVLM2VecConfig.register_for_auto_class()
XVLM2VecModel.register_for_auto_class("AutoModel")

__all__ = [
    "EncodePlan",
    "XVLM2VecModel",
    "XVLM2VecOutput",
    "XVLM2VecPreTrainedModel",
    "pool",
    "prefix_mean",
]
