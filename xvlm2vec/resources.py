"""Files the commands need at run time, shipped inside the package: recipes, accelerate configs, the metric.

In a checkout they are the top-level ``recipes/``, ``accelerate_configs/`` and ``metrics/`` folders
(``xvlm2vec/shipped/`` links to them); in a wheel they are copies under ``xvlm2vec/shipped/``. Either
way they are found relative to this package, never by climbing out of it. Card templates ship with
:mod:`hub_cards` (its ``templates/`` package data).
"""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "shipped"


def metric_path() -> str:
    """The MMMEB ``evaluate`` metric module's folder, for ``evaluate.load(metric_path())``."""
    return str(SHIPPED / "metrics" / "mmmeb")


def _named(kind: str, name_or_path: str | Path) -> Path:
    """``name_or_path`` as an existing file, else the shipped ``kind/<name>.yaml``; ValueError listing the names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SHIPPED / kind / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise ValueError(
        f"{name_or_path} is neither a file nor a shipped {kind[:-1]} name; shipped: {', '.join(shipped_names(kind))}"
    )


def shipped_names(kind: str) -> list[str]:
    """Names of the shipped ``kind`` files (``recipes`` or ``accelerate_configs``), without ``.yaml``."""
    return sorted(path.stem for path in (SHIPPED / kind).glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """A training recipe: a YAML path, or the name of a shipped recipe (``tiny_cpu``, ``qwen2_vl``, ...)."""
    return _named("recipes", name_or_path)


def accelerate_config_path(name_or_path: str | Path) -> Path:
    """An accelerate config: a YAML path, or the name of a shipped one (``cpu``, ``fsdp``, ...)."""
    return _named("accelerate_configs", name_or_path)
