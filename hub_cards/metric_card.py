"""The MMMEB metric as a publishable ``evaluate`` Space: card metadata, app and requirements.

``evaluate.load("namespace/name")`` reads ``name.py`` from a Space repository; the Space itself
runs a Gradio widget (``app.py``) and needs Space metadata in its card (``sdk``, ``app_file``).
The metric's author writes the card body (``metrics/mmmeb/README.md``); this module keeps it and
adds the Space metadata, as ``evaluate-cli create`` would have.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from string import Template

from huggingface_hub import SpaceCard

from hub_cards.templates_io import read_template

# gradio 3.x: evaluate's launch_gradio_widget uses the gr.inputs API removed in gradio 4.
SPACE_METADATA = {
    "sdk": "gradio",
    "sdk_version": "3.19.1",
    "app_file": "app.py",
    "pinned": False,
    "emoji": "📏",
    "colorFrom": "blue",
    "colorTo": "green",
}
REQUIRED_TAGS = ("evaluate", "metric")


def render_metric_card(metric_dir: str | Path) -> SpaceCard:
    """The metric's card with Space metadata added (its own title, description, tags and body kept)."""
    readme = Path(metric_dir) / "README.md"
    if not readme.is_file():
        raise FileNotFoundError(f"{readme}: missing; the metric module needs its card")
    card = SpaceCard.load(readme, repo_type="space")
    for key, value in SPACE_METADATA.items():
        if card.data.get(key) is None:
            card.data[key] = value
    tags = list(card.data.get("tags") or [])
    card.data["tags"] = tags + [tag for tag in REQUIRED_TAGS if tag not in tags]
    if card.data.get("title") is None:
        card.data["title"] = Path(metric_dir).name
    return card


def space_files(repo_id: str) -> dict[str, str]:
    """``app.py`` and ``requirements.txt`` of the metric's Space, for ``repo_id``."""
    values = {"repo_id": repo_id, "evaluate_version": version("evaluate")}
    return {
        "app.py": Template(read_template("metric_app.py.txt")).substitute(values),
        "requirements.txt": Template(read_template("metric_requirements.txt")).substitute(values),
    }
