"""sentence-transformers support: the input module a saved model folder names in its ``modules.json``.

``SentenceTransformer(folder, trust_remote_code=True)`` loads :class:`XVLM2VecSentenceModule` from
this file (copied into every saved folder with the rest of the model's code). It turns
sentence-transformers' inputs (a text, an image, or ``{"text": ..., "image": ...}``) and prompt into
the same prompts and batches as ``XVLM2VecModel.encode``, so both give the same embeddings.

The file needs only torch and transformers: sentence-transformers uses the module through the
methods it calls on any input module (``load``, ``preprocess``, ``forward``, ``save``,
``modalities``, ``tokenizer``), not through its base classes, so the model's code keeps working
where sentence-transformers is not installed.

Named prompts: every instruction of the model's ``config.instructions`` is stored as the prompt
``{task}_{side}_{lang}`` (``t2i_query_it``, ``t2i_candidate_en``, ``i2t_query_de``, ...), written
with the canonical image tag and ``{text}`` where the input text goes, exactly as ``encode``'s
``instruction`` takes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch import nn
from transformers import AutoModel

from .instructions import compose_prompt
from .processing_xvlm2vec import check_lengths

#: The class reference sentence-transformers reads from ``modules.json``.
MODULE_TYPE = "sentence_xvlm2vec.XVLM2VecSentenceModule"
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json")


def prompt_name(task: str, side: str, lang: str) -> str:
    """The sentence-transformers prompt name of one protocol instruction, e.g. ``t2i_query_it``."""
    return f"{task}_{side}_{lang}"


def named_prompts(instructions: dict[str, dict[str, dict[str, str]]]) -> dict[str, str]:
    """Every instruction of the task -> side -> language table under its prompt name."""
    return {
        prompt_name(task, side, lang): text
        for task, sides in instructions.items()
        for side, by_lang in sides.items()
        for lang, text in by_lang.items()
    }


def write_sentence_transformers_files(save_directory: str | os.PathLike, instructions: dict) -> None:
    """Write ``modules.json`` and ``config_sentence_transformers.json`` (named prompts, cosine) into a folder."""
    folder = Path(save_directory)
    modules = [{"idx": 0, "name": "0", "path": "", "type": MODULE_TYPE}]
    config = {
        "model_type": "SentenceTransformer",
        "prompts": named_prompts(instructions),
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def split_input(sample: Any, position: int) -> tuple[str | None, Any]:
    """One sentence-transformers input as ``(text, image)``: a string, an image, or a text/image dict.

    A string is text unless it names an existing image file (sentence-transformers' own rule for
    paths); an image is a PIL image or a path. Anything else is a ``ValueError`` naming the input.
    """
    if isinstance(sample, Image.Image):
        return None, sample
    if isinstance(sample, str):
        is_image_file = Path(sample).suffix.lower() in Image.registered_extensions() and Path(sample).is_file()
        return (None, sample) if is_image_file else (sample, None)
    if isinstance(sample, dict) and sample and set(sample) <= {"text", "image"}:
        return sample.get("text"), sample.get("image")
    raise ValueError(
        f"input {position}: expected a text, an image or a dict with 'text' and/or 'image', "
        f"got {type(sample).__name__}"
    )


class XVLM2VecSentenceModule(nn.Module):
    """The whole xVLM2Vec model as sentence-transformers' single (input) module.

    It outputs ``sentence_embedding`` (last-token pooled, L2-normalised as configured) and
    ``token_embeddings`` (the backbone's last hidden state).
    """

    save_in_root = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._max_seq_length: int | None = None

    @property
    def max_seq_length(self) -> int | None:
        """The longest row in tokens (image tokens included), or ``None`` for no cap.

        A longer row is refused with a ``ValueError`` naming it, never truncated: cutting a row could
        cut its image tokens or the last token the embedding is pooled from.
        """
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"max_seq_length must be a positive int or None, got {value!r}")
        self._max_seq_length = value

    @property
    def modalities(self) -> list[Any]:
        """Texts, images, text+image dicts, and batches that mix them (sentence-transformers calls them messages)."""
        return ["text", "image", ("image", "text"), "message"]

    @property
    def processor(self) -> Any:
        """The backbone's processor."""
        return self.model.processor

    @property
    def tokenizer(self) -> Any:
        """The backbone's tokenizer."""
        return getattr(self.processor, "tokenizer", self.processor)

    def get_sentence_embedding_dimension(self) -> int:
        """Width of the embeddings."""
        return self.model.config.hidden_size

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Build one padded batch, with ``prompt`` used as ``encode``'s ``instruction`` (empty or ``None``: none).

        Rows longer than ``max_seq_length`` are refused (``ValueError`` naming them).
        """
        rows = [split_input(sample, position) for position, sample in enumerate(inputs)]
        texts = [compose_prompt(prompt, text) for text, _ in rows]
        batch = self.model.prepare_inputs(texts, [image for _, image in rows])
        check_lengths(batch, self.max_seq_length, range(len(rows)), setting="max_seq_length")
        return dict(batch)

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Embed a batch from ``preprocess``; adds ``sentence_embedding`` and ``token_embeddings``."""
        inputs = dict(features)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        output = self.model(**inputs)
        features["sentence_embedding"] = output.embeddings
        features["token_embeddings"] = output.last_hidden_state
        return features

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Save the model folder (weights, config, processor, code and these sentence-transformers files)."""
        self.model.save_pretrained(output_path)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> XVLM2VecSentenceModule:
        """Load the model with ``AutoModel`` (its remote code) from the folder or Hub repo."""
        options = dict(model_kwargs or {})
        if subfolder:
            options["subfolder"] = subfolder
        model = AutoModel.from_pretrained(
            model_name_or_path,
            trust_remote_code=trust_remote_code,
            token=token,
            cache_dir=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
            **options,
        )
        return cls(model.eval())


__all__ = ["XVLM2VecSentenceModule", "named_prompts", "prompt_name", "write_sentence_transformers_files"]
