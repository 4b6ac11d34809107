"""Which files of a folder a model, dataset or metric repository may receive.

``publish`` stages a file only when it is on its kind's allow-list (:data:`ALLOWED`): weights,
configs, code, tokenizer and processor files, cards, data shards, results. Everything else is left
out and listed. Two things are refused outright, before anything is staged: files whose names
look like secrets (:data:`SECRET_PATTERNS`: keys, credentials, tokens, ``.env``), wherever they
are in the folder, and links whose target leaves the folder (a link inside it is published as
the file it points to).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from hub_cards.checks import PICKLE_SUFFIXES

#: File names that look like private keys, credentials or tokens (matched on every path component).
SECRET_PATTERNS = (
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".ssh",
    "credentials",
    "credentials.*",
    "*_credentials.json",
    "service_account*.json",
    "service-account*.json",
    "secret",
    "secrets",
    "secret.*",
    "secrets.*",
    "*.secret",
    ".env",
    ".env.*",
    ".netrc",
    "_netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".htpasswd",
    "token",
    "token.*",
    "tokens",
    "tokens.*",
    "*.token",
    "*_token",
    "*_token.txt",
    "hf_token*",
    "api_key*",
    "apikey*",
)

_TOKENIZER = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "*.tiktoken",
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "additional_chat_templates/*.jinja",
)
_CARDS = ("README.md", "LICENSE", "LICENSE.*", "NOTICE", "NOTICE.*")
_DATA = ("*.parquet", "*.arrow", "*.jpg", "*.jpeg", "*.png", "*.webp", "*.gif", "*.bmp", "*.tif", "*.tiff")

#: kind -> category -> path patterns. A pattern without ``/`` matches files at the top of the folder only.
ALLOWED: dict[str, dict[str, tuple[str, ...]]] = {
    "model": {
        "weights": ("*.safetensors", "model.safetensors.index.json", "adapter/*.safetensors"),
        "config": (
            "config.json",
            "generation_config.json",
            "modules.json",
            "config_sentence_transformers.json",
            "sentence_bert_config.json",
            "[0-9]_*/config.json",
            "languages.json",
            "adapter/adapter_config.json",
        ),
        "code": ("*.py",),
        "tokenizer/processor": _TOKENIZER,
        "card": (*_CARDS, "adapter/README.md"),
        "results": (
            "results.json",
            "all_results.json",
            "train_results.json",
            "eval_results.json",
            "trainer_state.json",
            "training_args.json",
            "adapter/training_args.json",
            "vllm_export.json",
        ),
    },
    "dataset": {
        "card": _CARDS,
        "results": ("build_report.json",),
        "data shard": (*_DATA, *(f"*/{pattern}" for pattern in _DATA), "data/*.jsonl", "data/*.json", "data/*.csv"),
    },
    "metric": {
        "code": ("*.py",),
        "card": _CARDS,
        "config": ("requirements.txt",),
    },
}


def _matches(relative: str, pattern: str) -> bool:
    """``fnmatch`` on a POSIX relative path; a pattern without ``/`` only matches top-level files."""
    if "/" not in pattern and "/" in relative:
        return False
    return fnmatch.fnmatchcase(relative, pattern)


def category(relative: str, kind: str) -> str | None:
    """The allow-list category of ``relative`` in a ``kind`` repository, or None when it does not belong there.

    Pickle-based files are ``pickle``: they are staged so that the folder checks refuse them by name (they
    are a sign of weights saved the unsafe way, not something to drop quietly).
    """
    if relative.lower().endswith(PICKLE_SUFFIXES):
        return "pickle"
    for name, patterns in ALLOWED[kind].items():
        if any(_matches(relative, pattern) for pattern in patterns):
            return name
    return None


def looks_secret(relative: str) -> bool:
    """True when a component of ``relative`` matches :data:`SECRET_PATTERNS` (case-insensitive)."""
    return any(
        fnmatch.fnmatchcase(part.lower(), pattern)
        for part in PurePosixPath(relative).parts
        for pattern in SECRET_PATTERNS
    )


@dataclass
class FolderScan:
    """A folder's files (links included, not followed), its secret-looking files and its links that leave it."""

    files: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    escaping_links: list[tuple[str, str]] = field(default_factory=list)
    folder_links: list[str] = field(default_factory=list)


def scan(folder: str | Path) -> FolderScan:
    """Walk ``folder`` without following links: every file, every secret, every link whose target leaves it.

    A link to a folder inside ``folder`` is recorded in ``folder_links`` (its files are published from where
    they are, not twice); a broken link counts as leaving the folder (its target is nowhere in it).
    """
    root = Path(folder).resolve()
    result = FolderScan()
    for current, dirs, names in os.walk(root, followlinks=False):
        here = Path(current)
        for name in sorted(dirs) + sorted(names):
            path = here / name
            relative = path.relative_to(root).as_posix()
            if (name in names or path.is_symlink()) and looks_secret(relative):
                result.secrets.append(relative)
            if path.is_symlink():
                target = path.resolve()
                if not target.exists() or not target.is_relative_to(root):
                    result.escaping_links.append((relative, str(os.readlink(path))))
                elif target.is_dir():
                    result.folder_links.append(relative)
                else:
                    result.files.append(relative)
            elif name in names:
                result.files.append(relative)
        dirs[:] = [name for name in dirs if not (here / name).is_symlink()]
    result.files.sort()
    return result


def refusals(found: FolderScan) -> list[str]:
    """The problems that refuse a folder before staging: secret-looking files, links that leave it."""
    problems = []
    if found.secrets:
        problems.append(
            f"files that look like secrets (keys, credentials, tokens): {', '.join(sorted(found.secrets))}; "
            "move them out of the folder (nothing was staged)"
        )
    problems += [f"{name}: a link to {target}, outside the folder" for name, target in found.escaping_links]
    return problems


__all__ = ["ALLOWED", "SECRET_PATTERNS", "FolderScan", "category", "looks_secret", "refusals", "scan"]
