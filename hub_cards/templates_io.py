"""Access to the card templates shipped in ``hub_cards/templates/``."""

from __future__ import annotations

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def template_path(name: str) -> Path:
    """Path of the template file ``name``; ``FileNotFoundError`` naming it when absent."""
    path = TEMPLATES_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"card template {name!r} not found in {TEMPLATES_DIR}")
    return path


def read_template(name: str) -> str:
    """Text of the template file ``name``."""
    return template_path(name).read_text(encoding="utf-8")


def citation() -> str:
    """The xVLM2Vec BibTeX entry used by every card."""
    return read_template("citation.bib").strip()
