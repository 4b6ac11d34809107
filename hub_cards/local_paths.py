"""Take the training machine's paths out of the text files a publish stages.

A run records where it ran: TrainingArguments' ``output_dir``, peft's ``base_model_name_or_path``
and adapter card (``base_model: /home/...``), a build report's ``source``, a results table's model
names. Published, these leak the machine's layout and name models nobody else can load.
:func:`scrub_folder` rewrites the staged copies (never the source folder):

- a **base model** (``base_model_name_or_path`` of an ``adapter_config.json``, ``base_model`` and the
  ``base_model:...`` tags of a card) stays when it is a Hub id, else becomes the ``--base-model`` Hub id
  given, else is dropped;
- every other **absolute local path** becomes its last component (``/home/me/runs/tiny_student`` ->
  ``tiny_student``): ``~/...``, and ``/x/...`` where ``x`` is a usual top-level folder (``home``, ``tmp``,
  ``data``, ``scratch``, ...) or exists on this machine; a URL route such as ``/v1/embeddings`` is not one.

Only cards, configs and records are rewritten: code is checked byte for byte against the installed
package, and data shards and weights are data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from huggingface_hub import RepoCard

from xvlm2vec_common.cli_arguments import is_hub_id

#: An absolute POSIX path of at least two components, or one under ``~``, not part of a URL or a word.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~<>-])(?:~|/[^\s/\"'`<>|()\[\]{},;*?]+)(?:/[^\s/\"'`<>|()\[\]{},;*?]+)+/?")
TEXT_SUFFIXES = (".json", ".md", ".txt", ".yaml", ".yml", ".jinja")
ADAPTER_CONFIG = "adapter_config.json"
BASE_MODEL_TAG = "base_model:"


#: Top-level folders of machines' file systems: a path under one is local even when this machine has no such folder.
LOCAL_ROOTS = frozenset(
    {
        "home", "root", "tmp", "Users", "mnt", "media", "data", "scratch", "work", "workspace", "var", "opt", "srv",
        "private", "net", "nfs", "gpfs", "lustre", "fsx", "content", "kaggle", "cluster", "storage", "shared",
        "projects",
    }
)  # fmt: skip


def is_local_path(path: str) -> bool:
    """Whether an absolute-looking ``path`` names a file system location, not a URL route such as ``/v1/embeddings``.

    ``~/...`` always; ``/x/...`` when ``x`` is a usual top-level folder (:data:`LOCAL_ROOTS`) or exists here.
    """
    if path.startswith("~"):
        return True
    top = path.split("/")[1]
    return top in LOCAL_ROOTS or Path("/", top).exists()


def last_component(match: re.Match) -> str:
    """The last component of a matched local path (``/a/b/c/`` -> ``c``); any other match unchanged."""
    path = match.group(0)
    return path.rstrip("/").rsplit("/", 1)[-1] if is_local_path(path) else path


def hub_base_model(value: str | None, given: str | None) -> str | None:
    """A base model reference as published: kept when a Hub id, else the given Hub id, else None."""
    return value if value and is_hub_id(value) else given


def _scrub_adapter_config(path: Path, base_model: str | None) -> bool:
    """Point an adapter config's ``base_model_name_or_path`` at a Hub id or at nothing; True when changed."""
    config = json.loads(path.read_text(encoding="utf-8"))
    value = config.get("base_model_name_or_path")
    published = hub_base_model(value, base_model)
    if published == value:
        return False
    config["base_model_name_or_path"] = published
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return True


def _scrub_card(path: Path, base_model: str | None) -> bool:
    """Keep only Hub ids in a card's ``base_model`` and ``base_model:...`` tags; True when changed.

    A card whose YAML does not parse is left as it is (the folder checks refuse it by name).
    """
    try:
        card = RepoCard.load(path)
    except (ValueError, yaml.YAMLError):
        return False
    data = card.data
    changed = False
    value = data.get("base_model")
    if value is not None:
        values = value if isinstance(value, list) else [value]
        published = [v for v in dict.fromkeys(hub_base_model(v, base_model) for v in values) if v]
        new_value = (published if isinstance(value, list) else published[0]) if published else None
        if new_value != value:
            changed = True
            if new_value is None:
                data.pop("base_model", None)
            else:
                data.base_model = new_value
    tags = data.get("tags")
    if tags:
        new_tags = []
        for tag in tags:
            if isinstance(tag, str) and tag.startswith(BASE_MODEL_TAG):
                prefix, _, reference = tag.rpartition(":")
                reference = hub_base_model(reference, base_model)
                tag = f"{prefix}:{reference}" if reference else None
            if tag is not None and tag not in new_tags:
                new_tags.append(tag)
        if new_tags != tags:
            changed = True
            data.tags = new_tags
    if changed:
        card.save(path)
    return changed


def scrub_text(text: str) -> tuple[str, int]:
    """``text`` with every absolute local path replaced by its last component, and how many were replaced."""
    count = sum(1 for match in ABSOLUTE_PATH.finditer(text) if is_local_path(match.group(0)))
    return (ABSOLUTE_PATH.sub(last_component, text) if count else text), count


def scrub_folder(folder: str | Path, names: list[str], base_model: str | None = None) -> list[tuple[str, str]]:
    """Rewrite the staged text files ``names`` (relative to ``folder``); return ``(name, what changed)`` for each.

    Run after the cards are written, so rendered cards are covered too.
    """
    folder = Path(folder)
    rewritten = []
    for name in names:
        path = folder / name
        if not name.endswith(TEXT_SUFFIXES):
            continue
        changes = []
        base_changed = path.name == ADAPTER_CONFIG and _scrub_adapter_config(path, base_model)
        base_changed |= path.suffix == ".md" and text_has_front_matter(path) and _scrub_card(path, base_model)
        if base_changed:
            changes.append(f"base model not a Hub id: {f'set to {base_model}' if base_model else 'dropped'}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        scrubbed, count = scrub_text(text)
        if count:
            path.write_text(scrubbed, encoding="utf-8")
            changes.append(f"{count} local path{'s' if count > 1 else ''} cut to the last component")
        if changes:
            rewritten.append((name, "; ".join(changes)))
    return rewritten


def text_has_front_matter(path: Path) -> bool:
    """True when a markdown file starts with a YAML front matter block (a card)."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        return handle.readline().strip() == "---"


__all__ = ["ABSOLUTE_PATH", "LOCAL_ROOTS", "hub_base_model", "is_local_path", "scrub_folder", "scrub_text"]
