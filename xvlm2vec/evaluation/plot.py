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
    """Draw one panel per config plus the per-language average, four to a row (x: language, bars:
    models, y: precision@1 %); save as PNG."""
    models = document["models"]
    panels = {config: [m["averages"]["per_config"].get(config, {}) for m in models]
              for config in sorted({config for m in models for config in m["averages"]["per_config"]})}
    panels["average over configs"] = [m["averages"]["per_language"] for m in models]
    titles = list(panels)
    columns = min(len(titles), 4)
    rows = -(-len(titles) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns + 0.6, 3.0 * rows + 0.6), squeeze=False, sharey=True)
    width = 0.8 / len(models)
    for ax in axes.flat[len(titles) :]:
        ax.set_visible(False)
    for ax, config in zip(axes.flat, titles):
        languages = sorted({lang for by_lang in panels[config] for lang in by_lang}, key=lambda l: (l != "en", l))
        positions = np.arange(len(languages))
        for index, (model, by_lang) in enumerate(zip(models, panels[config])):
            values = [100 * by_lang.get(lang, np.nan) for lang in languages]
            ax.bar(positions + (index - (len(models) - 1) / 2) * width, values, width, label=model["name"])
        ax.set_title(config)
        ax.set_xticks(positions, languages)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("precision@1 (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(models), 3), fontsize="small")
    legend_rows = -(-len(models) // 3)
    fig.tight_layout(rect=(0, 0.05 * legend_rows / rows + 0.02, 1, 1))
    path = Path(path)
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
    return path
