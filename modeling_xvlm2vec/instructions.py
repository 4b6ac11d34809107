"""MMMEB evaluation protocol: task instructions per language and the three formatting styles.

Instructions are written with the canonical (Phi-3.5-V) image tag ``<|image_1|>``; a model maps
it to its own backbone's tag when it builds inputs. The default table comes from the language
registry (:mod:`.languages`); a model's config carries its own table. ``{text}`` marks where the
query text goes.

The styles follow the released evaluation: on the query side they act on the whole prompt after the
text is put into its instruction; on the candidate side they act on the candidate template (the
image instruction, or ``{text}`` for a text candidate) before the text is filled in.
"""

from __future__ import annotations

from .languages import IMAGE_TAG as CANONICAL_IMAGE_TAG
from .languages import PLACEHOLDER as TEXT_SLOT
from .languages import TASK_SIDES, load_languages

STYLES = ("plain", "punct", "newline")
TASKS = tuple(TASK_SIDES)
#: How a candidate scoring the same as the positive ranks: above it (pessimistic) or below it (optimistic).
TIES = ("pessimistic", "optimistic")


def default_instructions() -> dict[str, dict[str, dict[str, str]]]:
    """The protocol's instruction table (task -> side -> language -> text) from the shipped language registry."""
    return load_languages().instruction_table()


def __getattr__(name: str):
    """``INSTRUCTIONS`` (the default table) and ``LANGUAGES`` (the shipped languages), read lazily from the
    registry.
    """
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


def style_query(prompt: str, style: str, question: bool = False) -> str:
    """Apply a formatting style to a whole query prompt (instruction with its text filled in).

    ``plain``: strip, then drop one final ``.`` or ``?``; ``punct``: when the prompt does not end in
    ``.`` or ``?``, strip it and append ``.`` (``?`` when ``question``); ``newline``: as ``punct``,
    then append a newline. This is the released evaluation's rule: it reads the prompt's last
    character before stripping, and never touches the text inside the prompt.
    """
    if style not in STYLES:
        raise ValueError(f"unknown formatting style {style!r}; expected one of {STYLES}")
    if style == "plain":
        stripped = prompt.strip()
        return stripped[:-1] if stripped.endswith((".", "?")) else stripped
    punct = prompt if prompt.endswith((".", "?")) else prompt.strip() + ("?" if question else ".")
    return punct if style == "punct" else punct + "\n"


def style_candidate(template: str, style: str, image: bool) -> str:
    """Apply a formatting style to a candidate template, before its text is filled in.

    ``plain``: strip, then drop one final ``.`` or ``?``; ``punct``: when the template does not end
    in ``.``, strip it and append ``.``; ``newline``: an image candidate's template is stripped and
    gets ``.`` plus a newline, a text candidate's is styled as ``punct``. A text candidate's template
    is ``{text}`` alone, so ``plain`` leaves its text unchanged and ``punct`` appends ``.`` even to a
    text that already ends in one (the released evaluation's rule).
    """
    if style not in STYLES:
        raise ValueError(f"unknown formatting style {style!r}; expected one of {STYLES}")
    if style == "plain":
        stripped = template.strip()
        return stripped[:-1] if stripped.endswith((".", "?")) else stripped
    if style == "newline" and image:
        return template.strip() + ".\n"
    return template if template.endswith(".") else template.strip() + "."


def fill_template(template: str, text: str | None) -> str:
    """Put ``text`` into the ``{text}`` slot of ``template`` (a template without a slot is returned as is)."""
    return template.replace(TEXT_SLOT, text) if text is not None else template


def query_prompt(task: str, lang: str, text: str | None, style: str, table: dict | None = None) -> str | None:
    """The protocol's query prompt: the task's instruction with ``text`` filled in, then styled as a whole.

    Returns ``None`` for a query the protocol skips: its instruction takes a text and ``text`` is
    ``None``. The prompt keeps the canonical image tag; see :func:`to_image_tag`.
    """
    template = get_instruction(task, "query", lang, table)
    if template is None:
        raise ValueError(f"task {task!r} has no query instruction")
    if TEXT_SLOT in template and text is None:
        return None
    return style_query(fill_template(template, text), style, question=task == "vqa")


def candidate_prompt(task: str, lang: str, text: str | None, style: str, table: dict | None = None) -> str:
    """The protocol's candidate prompt: the candidate template styled, then ``text`` filled in.

    An image candidate (``text`` is ``None``) uses the task's candidate instruction; a text
    candidate's template is ``{text}`` (no instruction).
    """
    image = text is None
    template = get_instruction(task, "candidate", lang, table) if image else TEXT_SLOT
    if template is None:
        raise ValueError(f"task {task!r} has no candidate instruction for image candidates")
    return fill_template(style_candidate(template, style, image), text)


def to_image_tag(prompt: str, image_tag: str) -> str:
    """Replace the canonical ``<|image_1|>`` tag of a protocol prompt by a backbone's own tag.

    Styles act on the canonical prompt first (as released), so the styled text is the same for
    every backbone and only the tag differs.
    """
    return prompt if image_tag == CANONICAL_IMAGE_TAG else prompt.replace(CANONICAL_IMAGE_TAG, image_tag)


def compose_prompt(instruction: str | None, text: str | None) -> str:
    """Join an instruction and a text: fill ``{text}`` when present, else append after a space.

    No instruction and an empty one (sentence-transformers' default ``query`` and ``document`` prompts)
    are the same: the text alone.
    """
    if not instruction:
        return text or ""
    if TEXT_SLOT in instruction:
        return instruction.replace(TEXT_SLOT, text or "")
    return instruction if not text else f"{instruction} {text}"
