"""MMMEB evaluation protocol: task instructions per language and text formatting styles.

Instructions are written with the canonical (Phi-3.5-V) image tag ``<|image_1|>``; a model maps
it to its own backbone's tag when it builds inputs. The default table comes from the language
registry (:mod:`.languages`); a model's config carries its own table. ``{text}`` marks where the query text goes;
an instruction without it is followed by the text after a space (or used alone).
"""

from __future__ import annotations

from .languages import IMAGE_TAG as CANONICAL_IMAGE_TAG
from .languages import TASK_SIDES, load_languages

STYLES = ("plain", "punct", "newline")
TASKS = tuple(TASK_SIDES)


def default_instructions() -> dict[str, dict[str, dict[str, str]]]:
    """The protocol's instruction table (task -> side -> language -> text) from the shipped language registry."""
    return load_languages().instruction_table()


def __getattr__(name: str):
    """``INSTRUCTIONS`` (the default table) and ``LANGUAGES`` (the shipped languages), read lazily from the registry."""
    if name == "INSTRUCTIONS":
        return default_instructions()
    if name == "LANGUAGES":
        return load_languages().codes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_instruction(task: str, side: str, lang: str, table: dict | None = None) -> str | None:
    """Return the instruction for ``task`` (i2t, t2i, vqa, vg, c), ``side`` (query/candidate), ``lang``.

    Returns ``None`` when the protocol has no instruction for that side (text candidates are
    embedded alone). Raises ``ValueError`` for an unknown task or a language the task lacks.
    """
    table = default_instructions() if table is None else table
    if task not in table:
        raise ValueError(f"unknown MMMEB task {task!r}; expected one of {sorted(table)}")
    by_lang = table[task].get(side)
    if by_lang is None:
        return None
    if lang not in by_lang:
        raise ValueError(f"task {task!r} has no {side} instruction for language {lang!r} (has {sorted(by_lang)})")
    return by_lang[lang]


def format_text(text: str, style: str, question: bool = False) -> str:
    """Format ``text`` in one of the protocol's styles.

    ``plain``: strip, drop one trailing ``.`` or ``?``; ``punct``: end with ``.`` (``?`` when
    ``question``); ``newline``: as ``punct`` then a newline.
    """
    if style not in STYLES:
        raise ValueError(f"unknown formatting style {style!r}; expected one of {STYLES}")
    plain = text.strip()
    if plain.endswith((".", "?")):
        plain = plain[:-1].rstrip()
    if style == "plain":
        return plain
    punct = plain + ("?" if question else ".")
    return punct if style == "punct" else punct + "\n"


def compose_prompt(instruction: str | None, text: str | None) -> str:
    """Join an instruction and a text: fill ``{text}`` when present, else append after a space."""
    if instruction is None:
        return text or ""
    if "{text}" in instruction:
        return instruction.replace("{text}", text or "")
    return instruction if not text else f"{instruction} {text}"
