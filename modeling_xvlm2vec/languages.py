"""The language registry: every language the project knows is an entry of a language file.

A language file (JSON, or YAML) maps language codes to entries::

    {"format": "xvlm2vec-languages/1",
     "languages": {"pt": {"name": "Portuguese",
                          "markers": {"question": "Pergunta", "answer": "Resposta"},
                          "punctuation": {},
                          "baseline_class_template": "imagem de {text}",
                          "instructions": {"t2i": {"query": "... {text}", "candidate": "<|image_1|>\\n..."}, ...}}}}

Every field but the code is optional: ``name`` (defaults to the code), ``markers`` (the
``Question``/``Answer`` words of a packed translation request, written by ``xvlm2vec translate``
when missing), ``punctuation`` (English final mark -> this language's, ``""`` for none; defaults
to English's own marks), ``baseline_class_template`` and ``instructions`` (task -> side -> text,
written with the canonical image tag ``<|image_1|>`` and the ``{text}`` placeholder).

The paper's five languages ship as ``languages.json`` beside this module; user files given with
``--languages-file`` add languages or override fields of known ones (later files win, field by
field). The file is read lazily: this module is copied into model folders (whose ``config.json``
carries its instruction table) without the JSON file, and must import without it.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

REGISTRY_FILE = Path(__file__).with_name("languages.json")
FILE_FORMAT = "xvlm2vec-languages/1"
IMAGE_TAG = "<|image_1|>"
PLACEHOLDER = "{text}"
# the MMMEB tasks and the sides that may carry an instruction
TASK_SIDES: dict[str, tuple[str, ...]] = {
    "i2t": ("query",),
    "t2i": ("query", "candidate"),
    "vqa": ("query",),
    "vg": ("query", "candidate"),
    "c": ("query",),
}
FINAL_MARKS = (".", "?", "!")
_CODE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class Language:
    """One language: code, name, translation markers, final punctuation, instructions per task and side."""

    code: str
    name: str = ""
    markers: tuple[str, str] | None = None
    punctuation: Mapping[str, str] = field(default_factory=dict)
    baseline_class_template: str | None = None
    instructions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        """The name, or the code when the entry has none."""
        return self.name or self.code

    def final_mark(self, english_mark: str) -> str:
        """This language's sentence-final mark for English's ``english_mark`` (``""``: the script has none)."""
        return self.punctuation.get(english_mark, english_mark)

    def to_json(self) -> dict:
        """The entry as written in a language file (empty fields left out)."""
        entry: dict = {"name": self.name} if self.name else {}
        if self.markers is not None:
            entry["markers"] = {"question": self.markers[0], "answer": self.markers[1]}
        if self.punctuation:
            entry["punctuation"] = dict(self.punctuation)
        if self.baseline_class_template is not None:
            entry["baseline_class_template"] = self.baseline_class_template
        if self.instructions:
            entry["instructions"] = {task: dict(sides) for task, sides in self.instructions.items()}
        return entry


def check_code(code: str) -> str:
    """Return ``code`` when it is a language code (``pt``, ``fil``, ``pt-BR``, ``zh-Hans``), else raise
    ``ValueError``.
    """
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError(f"{code!r} is not a language code (2-3 lowercase letters, optional -Subtag parts)")
    return code


def placeholder_problems(english: str, text: str) -> list[str]:
    """What ``text`` lost or gained against ``english``: ``{text}`` placeholders and image tags, by count."""
    problems = []
    for token in (PLACEHOLDER, IMAGE_TAG):
        if text.count(token) != english.count(token):
            problems.append(f"{token} appears {text.count(token)} time(s), English has {english.count(token)}")
    if english.startswith(IMAGE_TAG + "\n") and not text.startswith(IMAGE_TAG + "\n"):
        problems.append(f"does not start with the image tag line {IMAGE_TAG!r}")
    return problems


def check_instructions(entry: Language, english: Language, where: str) -> None:
    """Raise ``ValueError`` when an instruction of ``entry`` lost or gained a placeholder or image tag against
    English's.
    """
    for task, sides in entry.instructions.items():
        for side, text in sides.items():
            reference = english.instructions.get(task, {}).get(side)
            if reference is None:
                raise ValueError(f"{where}: {entry.code}.instructions.{task}.{side} has no English counterpart")
            problems = placeholder_problems(reference, text)
            if problems:
                raise ValueError(f"{where}: {entry.code}.instructions.{task}.{side}: {'; '.join(problems)}")


def _parse_entry(code: str, raw: object, where: str) -> Language:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: entry {code!r} must be a mapping")
    unknown = set(raw) - {"name", "markers", "punctuation", "baseline_class_template", "instructions"}
    if unknown:
        raise ValueError(f"{where}: entry {code!r} has unknown field(s) {sorted(unknown)}")
    name = raw.get("name", "")
    markers = raw.get("markers")
    if markers is not None:
        if not isinstance(markers, dict) or set(markers) != {"question", "answer"}:
            raise ValueError(f"{where}: {code}.markers must be {{'question': ..., 'answer': ...}}")
        question, answer = (str(markers["question"]).strip(), str(markers["answer"]).strip())
        if not question or not answer or question == answer or any(c in question + answer for c in ":：\n"):
            raise ValueError(f"{where}: {code}.markers must be two different non-empty words without ':' or newlines")
        markers = (question, answer)
    punctuation = raw.get("punctuation") or {}
    if not isinstance(punctuation, dict) or any(
        k not in FINAL_MARKS or not isinstance(v, str) or len(v) > 1 for k, v in punctuation.items()
    ):
        raise ValueError(f'{where}: {code}.punctuation maps {FINAL_MARKS} to one character or ""')
    template = raw.get("baseline_class_template")
    if template is not None and PLACEHOLDER not in str(template):
        raise ValueError(f"{where}: {code}.baseline_class_template must contain {PLACEHOLDER}")
    instructions = raw.get("instructions") or {}
    if not isinstance(instructions, dict):
        raise ValueError(f"{where}: {code}.instructions must be a mapping task -> side -> text")
    for task, sides in instructions.items():
        if task not in TASK_SIDES or not isinstance(sides, dict):
            raise ValueError(
                f"{where}: {code}.instructions: unknown task {task!r}; expected one of {sorted(TASK_SIDES)}"
            )
        for side, text in sides.items():
            if side not in TASK_SIDES[task] or not isinstance(text, str) or not text.strip():
                raise ValueError(
                    f"{where}: {code}.instructions.{task}: {side!r} must be one of {TASK_SIDES[task]} "
                    "with a non-empty text"
                )
    return Language(
        check_code(code),
        str(name),
        markers,
        dict(punctuation),
        None if template is None else str(template),
        {task: dict(sides) for task, sides in instructions.items()},
    )


def read_language_file(path: str | Path) -> dict[str, Language]:
    """The entries of one language file; ``ValueError`` naming the file and entry when it is malformed."""
    import yaml  # a transformers dependency; YAML also reads JSON

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"language file {path}: cannot be read ({err})") from err
    if not isinstance(document, dict) or not isinstance(document.get("languages"), dict):
        raise ValueError(f"language file {path}: expected a mapping with a 'languages' mapping")
    if document.get("format", FILE_FORMAT) != FILE_FORMAT:
        raise ValueError(f"language file {path}: format {document['format']!r}, expected {FILE_FORMAT!r}")
    return {str(code): _parse_entry(str(code), raw, str(path)) for code, raw in document["languages"].items()}


def write_language_file(path: str | Path, languages: Iterable[Language], about: str | None = None) -> Path:
    """Write ``languages`` as a reviewable JSON language file (atomically: temporary sibling, then rename)."""
    path = Path(path)
    document: dict = {"format": FILE_FORMAT}
    if about:
        document["about"] = about
    document["languages"] = {lang.code: lang.to_json() for lang in languages}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for a plain write
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def merge_entries(base: Language, update: Language) -> Language:
    """``base`` with every field ``update`` sets (instructions merged task by task, side by side)."""
    instructions = {task: dict(sides) for task, sides in base.instructions.items()}
    for task, sides in update.instructions.items():
        instructions.setdefault(task, {}).update(sides)
    return replace(
        base,
        name=update.name or base.name,
        markers=update.markers or base.markers,
        punctuation={**base.punctuation, **update.punctuation},
        baseline_class_template=update.baseline_class_template or base.baseline_class_template,
        instructions=instructions,
    )


class LanguageRegistry:
    """The known languages, by code: the shipped paper languages plus any user language files."""

    def __init__(self, languages: Mapping[str, Language]) -> None:
        self._languages = dict(languages)

    @property
    def codes(self) -> tuple[str, ...]:
        """Every known code, English first, then in order of appearance."""
        return tuple(sorted(self._languages, key=lambda code: code != "en"))

    def __contains__(self, code: object) -> bool:
        return code in self._languages

    def __getitem__(self, code: str) -> Language:
        if code not in self._languages:
            raise KeyError(
                f"unknown language {code!r}; known: {', '.join(self.codes)} "
                "(add it with a language file, --languages-file)"
            )
        return self._languages[code]

    def get(self, code: str) -> Language:
        """The entry of ``code``, or a bare entry (code only) when the registry does not know it."""
        return self._languages.get(code) or Language(check_code(code))

    def name(self, code: str) -> str:
        """The display name of ``code`` (the code itself when unknown)."""
        return self._languages[code].display_name if code in self._languages else code

    def with_entries(self, entries: Mapping[str, Language]) -> LanguageRegistry:
        """A new registry with ``entries`` merged in (field by field over known languages)."""
        merged = dict(self._languages)
        for code, entry in entries.items():
            merged[code] = merge_entries(merged[code], entry) if code in merged else entry
        return LanguageRegistry(merged)

    def instruction_table(self, codes: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, str]]]:
        """Task -> side -> language -> instruction for ``codes`` (default: every language), as a model config holds
        it.
        """
        table: dict[str, dict[str, dict[str, str]]] = {}
        for code in codes if codes is not None else self.codes:
            for task, sides in self[code].instructions.items():
                for side, text in sides.items():
                    table.setdefault(task, {}).setdefault(side, {})[code] = text
        return {task: table[task] for task in TASK_SIDES if task in table}


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Language]:
    if not REGISTRY_FILE.is_file():
        raise FileNotFoundError(
            f"{REGISTRY_FILE} is missing: the language registry ships with the xvlm2vec package "
            "(model folders carry their instruction table in config.json instead)"
        )
    return read_language_file(REGISTRY_FILE)


def load_languages(files: Sequence[str | Path] | str | Path | None = ()) -> LanguageRegistry:
    """The shipped paper languages with the entries of ``files`` merged in, in order.

    Every instruction of a file's language must keep English's ``{text}`` placeholders and image tags.
    """
    if isinstance(files, (str, Path)):
        files = [files]
    registry = LanguageRegistry(_shipped())
    for path in files or ():
        entries = read_language_file(path)
        registry = registry.with_entries(entries)
        for code in entries:
            check_instructions(registry[code], registry["en"], str(path))
    return registry


def table_with_entries(table: Mapping, entries: Mapping[str, Language]) -> dict[str, dict[str, dict[str, str]]]:
    """An instruction ``table`` (task -> side -> language -> text) with the instructions of ``entries``
    added/overriding.
    """
    merged = {task: {side: dict(by_lang) for side, by_lang in sides.items()} for task, sides in table.items()}
    for code, entry in entries.items():
        for task, sides in entry.instructions.items():
            for side, text in sides.items():
                merged.setdefault(task, {}).setdefault(side, {})[code] = text
    return merged


def table_languages(table: Mapping) -> list[str]:
    """The languages an instruction table covers (English first)."""
    codes = {code for sides in table.values() for by_lang in sides.values() for code in by_lang}
    return sorted(codes, key=lambda code: (code != "en", code))
