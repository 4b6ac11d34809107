"""Safe names: config, split and language names are checked here before they become paths.

A name is 1-64 characters of ``A-Z a-z 0-9 _ . -``, starts with a letter or digit and never
contains ``..``; so ``..``, ``a/b``, ``/x``, ``C:x`` or a NUL byte can never become a folder.
A row's language must be a language code (:func:`modeling_xvlm2vec.languages.check_code`:
``it``, ``pt-BR``) and a safe name; ``all`` is the parallel corpus' every-language config, never a
language.
"""

from __future__ import annotations

import re

from modeling_xvlm2vec.languages import check_code
from xvlm2vec_common.safe_inputs import RowError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ALL_LANGUAGES = "all"


def is_safe_name(name: object) -> bool:
    """True when ``name`` may be used as a config, split or file-name part."""
    return isinstance(name, str) and SAFE_NAME.fullmatch(name) is not None and ".." not in name


def check_name(name: object, what: str) -> str:
    """Return ``name`` when :func:`is_safe_name`, else raise ``ValueError`` naming ``what`` (config, split...)."""
    if not is_safe_name(name):
        raise ValueError(f"unsafe {what} name {name!r}: expected 1-64 characters of A-Z a-z 0-9 _ . - (no '..')")
    return name


def check_language(lang: object) -> str:
    """Return a row's language code, or raise ``RowError('invalid_lang')`` (``all``, ``..``, ``a/b``...)."""
    try:
        if lang == ALL_LANGUAGES or not is_safe_name(check_code(lang)):
            raise ValueError(lang)
    except ValueError:
        raise RowError(
            "invalid_lang", f"language {lang!r} is not a language code (like 'it' or 'pt-BR'; 'all' is reserved)"
        ) from None
    return lang
