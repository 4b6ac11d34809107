"""Input conventions of published embedding models: how a (text, image) row becomes the prompt they were trained on.

A convention fixes what the embedding of a row is for one family of released embedders: the prompt around the
row (none, or a chat template with a system instruction), where the image goes, which image tag stands for it,
and how the decoder numbers the positions of image tokens. Pooling (last real token) and L2 normalisation are
the same for every convention here and stay the configuration's ``pooling`` / ``normalize``.

Each entry cites the released code it follows; ``docs/teachers.md`` has the table. Torch-free: the
configuration validates against this table.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from .instructions import CANONICAL_IMAGE_TAG

#: The slots of a chat template.
SYSTEM_SLOT = "{system}"
CONTENT_SLOT = "{content}"

#: Qwen's ChatML turn layout with the generation prompt (``add_generation_prompt=True``).
CHATML = "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"


@dataclass(frozen=True)
class Convention:
    """How one family of released embedders turns a row into its prompt.

    Attributes:
        name: the value of ``XVLM2VecConfig.convention``.
        template: the whole prompt with ``{content}`` (the row) and, for chat conventions, ``{system}``.
        default_system: the system instruction when none is given (``None``: the template has no system slot).
        punctuate_system: append ``.`` to a system instruction that does not end in punctuation.
        image_first: the image goes first in the row's content, directly followed by the text (a chat
            message's image part before its text part); otherwise the tag stays where the text puts it and
            a row without one gets ``<|image_1|>\\n`` at the start (VLM2Vec).
        image_tag: the tag the model's processor expands for an image (``None``: the backbone's own).
        positions: ``multimodal``: the backbone's 3-D rotary positions for image tokens (M-RoPE on Qwen-VL);
            ``sequential``: every token, image tokens included, numbered one after the other, as the released
            code ran them.
        backbones: the backbone ``model_type`` values the convention applies to (empty: all).
    """

    name: str
    template: str = CONTENT_SLOT
    default_system: str | None = None
    punctuate_system: bool = False
    image_first: bool = False
    image_tag: str | None = None
    positions: Literal["multimodal", "sequential"] = "multimodal"
    backbones: tuple[str, ...] = ()

    @property
    def has_system(self) -> bool:
        """Whether the template has a system instruction slot."""
        return SYSTEM_SLOT in self.template


CONVENTIONS: dict[str, Convention] = {
    # VLM2Vec (v1) and xVLM2Vec as released: the raw prompt, the image tag first with a newline.
    "vlm2vec": Convention("vlm2vec"),
    # VLM2Vec-V2 (TIGER-AI-Lab/VLM2Vec src/model/processor.py, process_input_text and VLM_IMAGE_TOKENS): the raw
    # prompt with a bare <|image_pad|> tag; without <|vision_start|> the released get_rope_index (transformers
    # 4.52.3) finds no image and numbers every token sequentially.
    "vlm2vec_v2": Convention(
        "vlm2vec_v2", image_tag="<|image_pad|>", positions="sequential", backbones=("qwen2_vl", "qwen2_5_vl")
    ),
    # GME (gme_inference.py of Alibaba-NLP/gme-Qwen2-VL-*-Instruct, as in mteb's gme_v_models.py): ChatML with the
    # instruction as system prompt ("You are a helpful assistant." by default and for candidates), image before
    # text, an <|endoftext|> after the generation prompt (the pooled token); the decoder is called with
    # position_ids=None and input embeddings, so positions are sequential.
    "gme": Convention(
        "gme",
        template=CHATML + "<|endoftext|>",
        default_system="You are a helpful assistant.",
        image_first=True,
        positions="sequential",
        backbones=("qwen2_vl",),
    ),
    # Qwen3-VL-Embedding (QwenLM/Qwen3-VL-Embedding src/models/qwen3_vl_embedding.py, format_model_input and
    # process): the chat template with the instruction as system prompt (default "Represent the user's input.",
    # final punctuation added), images before texts, the last token of the generation prompt pooled, M-RoPE.
    "qwen3_vl_embedding": Convention(
        "qwen3_vl_embedding",
        template=CHATML,
        default_system="Represent the user's input.",
        punctuate_system=True,
        image_first=True,
        backbones=("qwen3_vl",),
    ),
}
DEFAULT_CONVENTION = "vlm2vec"


def get_convention(name: str, backbone: str | None = None) -> Convention:
    """The convention ``name``; ``ValueError`` for an unknown one or one that does not fit ``backbone``."""
    if name not in CONVENTIONS:
        raise ValueError(f"unknown convention {name!r}; expected one of {sorted(CONVENTIONS)}")
    convention = CONVENTIONS[name]
    if backbone is not None and convention.backbones and backbone not in convention.backbones:
        raise ValueError(
            f"convention {name!r} applies to {', '.join(convention.backbones)} backbones, not {backbone!r}"
        )
    return convention


def system_instruction(convention: Convention, system: str | None) -> str:
    """The system instruction of a chat convention's row: ``system`` (punctuated if the convention does so) or
    the convention's default."""
    system = (system or "").strip() or convention.default_system
    if convention.punctuate_system and system and not unicodedata.category(system[-1]).startswith("P"):
        system += "."
    return system


def format_row(convention: Convention, text: str, system: str | None = None) -> str:
    """The whole prompt of one row in ``convention``, written with the canonical image tag ``<|image_1|>``.

    ``text`` is the row as ``prepare_inputs`` has it (the canonical tag where the image goes; a row with an image
    always has one, see ``add_image_tags``). With ``image_first`` the tag and a newline right after it are taken
    out and the tag is put in front of the text.
    """
    position = text.find(CANONICAL_IMAGE_TAG)
    if convention.image_first and position >= 0:
        rest = text[position + len(CANONICAL_IMAGE_TAG) :]
        text = CANONICAL_IMAGE_TAG + text[:position] + (rest[1:] if rest.startswith("\n") else rest)
    head, tail = convention.template.split(CONTENT_SLOT)
    if convention.has_system:
        instruction = system_instruction(convention, system)
        head, tail = head.replace(SYSTEM_SLOT, instruction), tail.replace(SYSTEM_SLOT, instruction)
    elif system is not None:
        raise ValueError(f"convention {convention.name!r} has no system prompt")
    return head + text + tail


__all__ = ["CONVENTIONS", "DEFAULT_CONVENTION", "Convention", "format_row", "get_convention", "system_instruction"]
