"""Resolve a build source: a local folder, or a Hub dataset repository at a pinned revision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from xvlm2vec_common.cli_arguments import is_hub_id, looks_local
from xvlm2vec_common.cli_errors import UsageError


def check_source(source: str | Path, argument: str = "--source") -> Path | None:
    """The local folder ``source`` names, or None when it is a Hub repo id; anything else is a UsageError."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{argument} {source}: expected a folder, got a file")
        return path
    if looks_local(str(source)) or not is_hub_id(str(source)):
        raise UsageError(f"{argument} {source}: no such folder, and not a Hub repo id (owner/name)")
    return None


def resolve_source(
    source: str | Path,
    revision: str | None = None,
    allow_patterns: list[str] | None = None,
    download: Callable[..., str] = snapshot_download,
) -> Path:
    """Return a local folder holding ``source``.

    An existing path is used as is. Otherwise ``source`` must be a Hub dataset repo id
    (``owner/name``) and ``revision`` a pinned revision (commit sha or tag): the files matching
    ``allow_patterns`` are fetched with ``huggingface_hub.snapshot_download`` (``download`` is
    injectable so the Hub path can be exercised offline); a repo that cannot be fetched (offline with
    ``HF_HUB_OFFLINE``, no such repo or revision) is a UsageError.
    """
    path = check_source(source)
    if path is not None:
        return path
    if not revision:
        raise UsageError(f"--source {source} is a Hub repo: pass --revision (a commit sha or tag) to pin it")
    try:
        local = download(repo_id=str(source), repo_type="dataset", revision=revision, allow_patterns=allow_patterns)
    except (LocalEntryNotFoundError, HfHubHTTPError, ConnectionError) as error:
        raise UsageError(
            f"--source {source}: no such folder, and the Hub dataset at revision {revision} cannot be fetched "
            f"({type(error).__name__}; offline (HF_HUB_OFFLINE) or a typo?)"
        ) from None
    return Path(local)
