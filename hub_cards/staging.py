"""Build the exact folder a ``publish`` would upload, then refuse it if it would not load.

``stage`` copies the source folder (leaving out caches, hidden files and, for models, the
Trainer's pickled training artefacts, each reported with its reason), writes the card (rendered
when its inputs are given) and the Space files of a metric, and runs the checks of
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
    card_note: str = ""

    @property
    def total_bytes(self) -> int:
        """Size of all staged files."""
        return sum(size for _, size in self.files)

    def table(self) -> str:
        """Readable listing: every file with its size, the total, the card's origin and what was left out."""
        width = max([len(name) for name, _ in self.files] + [4])
        lines = [f"{'file':<{width}}  {'bytes':>14}"]
        lines += [f"{name:<{width}}  {size:>14,d}" for name, size in self.files]
        lines.append(f"{f'{len(self.files)} files':<{width}}  {self.total_bytes:>14,d}")
        if self.card_note:
            lines.append(f"{CARD_NAME}: {self.card_note}")
        lines += [f"left out: {name} ({reason})" for name, reason in self.left_out]
        return "\n".join(lines)


def _leave_out_reason(relative: Path, kind: str) -> str | None:
    """Why ``relative`` (a path inside the source folder) is not published, or ``None`` to publish it."""
    for part in relative.parts:
        if any(fnmatch.fnmatch(part, pattern) for pattern in CACHE_NAMES):
            return "cache or hidden file"
        if kind == "model" and any(fnmatch.fnmatch(part, pattern) for pattern in TRAINING_ARTEFACTS):
            return "Trainer training artefact, not needed to load the model"
    return None


def _copy_tree(source: Path, target: Path, kind: str) -> list[tuple[str, str]]:
    """Copy ``source`` into ``target`` except left-out paths; return ``(path, reason)`` for each left out."""
    left_out: list[tuple[str, str]] = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        reason = _leave_out_reason(relative, kind)
        if reason is not None:
            if _leave_out_reason(relative.parent, kind) is None:  # report the top-most left-out path only
                left_out.append((relative.as_posix() + ("/" if path.is_dir() else ""), reason))
            continue
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            shutil.copy2(path, target / relative)
        else:
            left_out.append((relative.as_posix(), "not a regular file"))
    return left_out


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

    Raises ``PublishRefused`` (listing every problem) when the staged folder would not load, or when a
    model folder holds Python code other than the installed project's (its users would run it) and
    ``trust_remote_code`` is off; ``ValueError`` for bad arguments (unknown kind, malformed repo id,
    missing source folder).
    """
    check_arguments(kind, folder, repo_id)
    source, target = Path(folder), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    staged = StagedFolder(target, left_out=_copy_tree(source, target, kind))
    staged.card_note = _write_card(kind, source, target, repo_id, inputs or CardInputs())
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
