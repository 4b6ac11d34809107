"""``results.png``: precision@1 per language for every config, one bar per model (teacher vs student
side by side when two models are evaluated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402


def plot_results(document: dict[str, Any], path: str | Path) -> Path:
    """Draw one panel per config (x: language, bars: models, y: precision@1 %) and save it as PNG."""
    models = document["models"]
    configs = sorted({config for m in models for config in m["averages"]["per_config"]})
    fig, axes = plt.subplots(1, len(configs), figsize=(3.2 * len(configs) + 1, 3.6), squeeze=False, sharey=True)
    width = 0.8 / len(models)
    for ax, config in zip(axes[0], configs):
        languages = sorted(
            {lang for m in models for lang in m["averages"]["per_config"].get(config, {})}, key=lambda l: (l != "en", l)
        )
        positions = np.arange(len(languages))
        for index, model in enumerate(models):
            by_lang = model["averages"]["per_config"].get(config, {})
            values = [100 * by_lang.get(lang, np.nan) for lang in languages]
            ax.bar(positions + (index - (len(models) - 1) / 2) * width, values, width, label=model["name"])
        ax.set_title(config)
        ax.set_xticks(positions, languages)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("precision@1 (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(models), 3), fontsize="small")
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(models) - 1) // 3), 1, 1))
    path = Path(path)
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
    return path
