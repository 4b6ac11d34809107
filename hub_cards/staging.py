"""Build the exact folder a ``publish`` would upload, then refuse it if it would not load.

``stage`` first refuses a folder holding files that look like secrets or links that leave it
(``hub_cards.repo_files``), then copies only what a repository of the kind holds (its allow-list:
weights, configs, code, tokenizer and processor, cards, data shards, results; links inside the
folder become the files they point to), listing everything else with the reason it was left out
(caches, hidden files, the Trainer's pickled artefacts, anything not on the list). It writes the
card (rendered when its inputs are given) and a metric's Space files, takes the machine's local
paths out of the staged text files (``hub_cards.local_paths``), and runs the checks of
``hub_cards.checks`` on the result. The same staged folder is written by ``--dry-run`` and uploaded
otherwise, so the dry run shows exactly what the Hub would receive.
"""

from __future__ import annotations

import fnmatch
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hub_cards.checks import (
    CARD_NAME,
    PublishRefused,
    card_problems,
    check_dataset_folder,
    check_metric_folder,
    check_model_folder,
    untrusted_code_files,
)
from hub_cards.local_paths import scrub_folder
from hub_cards.repo_files import category, refusals, scan

KINDS = ("model", "dataset", "metric")
REPO_TYPES = {"model": "model", "dataset": "dataset", "metric": "space"}  # evaluate metrics live in Spaces
# Written by transformers' Trainer next to the model; pickled, and not needed to load it.
TRAINING_ARTEFACTS = (
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "checkpoint-*",
    "runs",
)
CACHE_NAMES = ("__pycache__", ".*")
#: Allow-list categories whose staged text files are cleaned of local paths (``hub_cards.local_paths``).
RECORD_CATEGORIES = ("card", "config", "results", "tokenizer/processor")


@dataclass
class CardInputs:
    """What the cards are rendered from (all optional: without them the folder's own README.md is kept)."""

    results: Path | None = None
    recipe: Path | None = None
    trainer_state: Path | None = None
    build_report: Path | None = None
    results_model: str | None = None
    base_model: str | None = None
    datasets: list[str] | None = None
    mmmeb_dataset_id: str | None = None
    license: str = "apache-2.0"
    languages_file: Path | None = None


@dataclass
class StagedFolder:
    """A staged folder: its files with sizes in bytes, and what was left out of the source and why."""

    path: Path
    files: list[tuple[str, int]] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    rewritten: list[tuple[str, str]] = field(default_factory=list)
    card_note: str = ""

    @property
    def total_bytes(self) -> int:
        """Size of all staged files."""
        return sum(size for _, size in self.files)

    def table(self) -> str:
        """Readable listing: every file with its size, the total, the card's origin, what was rewritten and what
        was left out."""
        width = max([len(name) for name, _ in self.files] + [4])
        lines = [f"{'file':<{width}}  {'bytes':>14}"]
        lines += [f"{name:<{width}}  {size:>14,d}" for name, size in self.files]
        lines.append(f"{f'{len(self.files)} files':<{width}}  {self.total_bytes:>14,d}")
        if self.card_note:
            lines.append(f"{CARD_NAME}: {self.card_note}")
        lines += [f"rewritten: {name} ({what})" for name, what in self.rewritten]
        lines += [f"left out: {name} ({reason})" for name, reason in self.left_out]
        return "\n".join(lines)


def _leave_out_reason(relative: str, kind: str) -> str | None:
    """Why ``relative`` (a file inside the source folder) is not published, or ``None`` to publish it."""
    for part in relative.split("/"):
        if any(fnmatch.fnmatch(part, pattern) for pattern in CACHE_NAMES):
            return "cache or hidden file"
        if kind == "model" and any(fnmatch.fnmatch(part, pattern) for pattern in TRAINING_ARTEFACTS):
            return "Trainer training artefact, not needed to load the model"
    if category(relative, kind) is None:
        return f"not part of a {kind} repository"
    return None


def _folders(name: str) -> list[str]:
    """The folders above a relative file, outermost first (``a/b/c`` -> ``a/``, ``a/b/``)."""
    parts = name.split("/")
    return ["/".join(parts[:depth]) + "/" for depth in range(1, len(parts))]


def _collapse(left_out: dict[str, str], staged: list[str]) -> list[tuple[str, str]]:
    """``(path, reason)`` to report: a folder (``dir/``) when none of its files is staged and all share a reason."""
    staged_folders = {folder for name in staged for folder in _folders(name)}
    reasons: dict[str, set[str]] = {}
    for name, reason in left_out.items():
        for folder in _folders(name):
            reasons.setdefault(folder, set()).add(reason)
    reported: dict[str, str] = {}
    for name, reason in sorted(left_out.items()):
        candidates = (f for f in _folders(name) if f not in staged_folders and reasons[f] == {reason})
        reported.setdefault(next(candidates, name), reason)
    return sorted(reported.items())


def _copy_allowed(source: Path, target: Path, kind: str) -> list[tuple[str, str]]:
    """Copy the files of ``source`` that a ``kind`` repository holds into ``target`` (links resolved).

    Refuses (``PublishRefused``) a folder with secret-looking files or links leaving it, before copying
    anything. Returns ``(path, reason)`` for what was left out.
    """
    found = scan(source)
    problems = refusals(found)
    if problems:
        raise PublishRefused(source, problems)
    staged, left_out = [], {}
    for relative in found.files:
        reason = _leave_out_reason(relative, kind)
        if reason is None:
            staged.append(relative)
        else:
            left_out[relative] = reason
    for relative in found.folder_links:
        left_out[relative + "/"] = "a link to a folder inside it: its files are published from where they are"
    for relative in staged:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, target / relative)  # follows a link inside the folder: its content
    return _collapse(left_out, staged)


def _refuse_unreadable_card(source: Path, repo_type: str) -> None:
    """Refuse a source folder whose own card (which the rendered card builds on) is missing or does not parse."""
    problems = card_problems(source, repo_type)
    if problems:
        raise PublishRefused(source, problems)


def _write_card(kind: str, source: Path, target: Path, repo_id: str, inputs: CardInputs) -> str:
    """Write the staged card (and a metric's Space files); return a note on where the card came from."""
    if kind == "model":
        sources = (("results", inputs.results), ("recipe", inputs.recipe), ("trainer state", inputs.trainer_state))
        given = [name for name, value in sources if value is not None]
        if not given and (source / CARD_NAME).is_file():
            return "kept from the folder"
        from hub_cards.model_card import render_model_card

        render_model_card(
            source,
            inputs.results,
            inputs.recipe,
            inputs.trainer_state,
            repo_id=repo_id,
            results_model=inputs.results_model,
            base_model=inputs.base_model,
            datasets=inputs.datasets,
            mmmeb_dataset_id=inputs.mmmeb_dataset_id,
            license=inputs.license,
            languages_file=inputs.languages_file,
        ).save(target / CARD_NAME)
        return "rendered from " + (", ".join(given) if given else "the model folder alone")
    if kind == "dataset":
        from hub_cards.dataset_card import REPORT_FILENAME, render_dataset_card

        report = inputs.build_report or (source / REPORT_FILENAME if (source / REPORT_FILENAME).is_file() else None)
        if report is None:
            return "kept from the folder (no build report to render it from)"
        _refuse_unreadable_card(source, "dataset")
        render_dataset_card(source, report, repo_id=repo_id).save(target / CARD_NAME)
        return f"rendered from the build report {report}"
    from hub_cards.metric_card import render_metric_card, space_files

    _refuse_unreadable_card(source, "space")
    render_metric_card(source).save(target / CARD_NAME)
    added = []
    for name, text in space_files(repo_id).items():
        if not (target / name).exists():
            (target / name).write_text(text, encoding="utf-8")
            added.append(name)
    return "Space metadata added" + (f"; wrote {', '.join(added)}" if added else "")


def check_arguments(kind: str, folder: str | Path, repo_id: str) -> None:
    """``ValueError`` for an unknown kind, a malformed repo id or a missing source folder (nothing written)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"--repo-id must be 'namespace/name', got {repo_id!r}")
    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: not a folder")


def stage(
    kind: str,
    folder: str | Path,
    repo_id: str,
    target: str | Path,
    inputs: CardInputs | None = None,
    trust_remote_code: bool = False,
) -> StagedFolder:
    """Write the folder that publishing ``folder`` as ``kind`` to ``repo_id`` would upload into ``target``.

    Raises ``PublishRefused`` (listing every problem) when the folder holds secret-looking files or links
    leaving it, when the staged folder would not load, or when a model folder holds Python code other than
    the installed project's (its users would run it) and ``trust_remote_code`` is off; ``ValueError`` for
    bad arguments (unknown kind, malformed repo id, missing source folder).
    """
    check_arguments(kind, folder, repo_id)
    source, target = Path(folder), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    inputs = inputs or CardInputs()
    staged = StagedFolder(target, left_out=_copy_allowed(source, target, kind))
    staged.card_note = _write_card(kind, source, target, repo_id, inputs)
    names = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    records = [name for name in names if category(name, kind) in RECORD_CATEGORIES]  # never code, data, weights
    staged.rewritten = scrub_folder(target, records, inputs.base_model)
    if kind == "model":
        problems = check_model_folder(target)
        if not trust_remote_code:
            problems += [
                f"{name}: code that is not the installed xvlm2vec's (whoever loads the published model runs it); "
                "pass --trust-remote-code if you vouch for it"
                for name in untrusted_code_files(target)
            ]
    elif kind == "dataset":
        problems = check_dataset_folder(target)
    else:
        problems = check_metric_folder(target, module_name=repo_id.split("/")[1])
    if problems:
        raise PublishRefused(source, problems)
    staged.files = [
        (p.relative_to(target).as_posix(), p.stat().st_size) for p in sorted(target.rglob("*")) if p.is_file()
    ]
    return staged
