"""``results.png``: precision@1 (mean over styles) per language, one bar per model (teacher vs student side by
side when two models are evaluated).

Up to :data:`PANEL_LANGUAGES_MAX` languages: one panel per config plus the per-language average,
languages on the x axis. More languages (XM3600 has 36): one tall panel of horizontal bars with the
per-language average of every model (a line marks each model's English score), and one heatmap per
model of config x language; the figure grows with the number of languages so labels never overlap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402

PANEL_LANGUAGES_MAX = 8
ROW_INCHES = 0.26  # height of one language row in the many-language layout


def _languages(by_lang_dicts: list[dict[str, float]]) -> list[str]:
    return sorted({lang for by_lang in by_lang_dicts for lang in by_lang}, key=lambda lang: (lang != "en", lang))


def _panels_figure(models: list[dict[str, Any]]) -> plt.Figure:
    """One panel per config plus the per-language average, four to a row (x: language, bars: models)."""
    panels = {
        config: [m["averages"]["per_config"].get(config, {}) for m in models]
        for config in sorted({config for m in models for config in m["averages"]["per_config"]})
    }
    panels["average over configs"] = [m["averages"]["per_language"] for m in models]
    titles = list(panels)
    columns = min(len(titles), 4)
    rows = -(-len(titles) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.4 * columns + 0.6, 3.0 * rows + 0.6), squeeze=False, sharey=True
    )
    width = 0.8 / len(models)
    for ax in axes.flat[len(titles) :]:
        ax.set_visible(False)
    for ax, config in zip(axes.flat, titles):
        languages = _languages(panels[config])
        positions = np.arange(len(languages))
        for index, (model, by_lang) in enumerate(zip(models, panels[config])):
            values = [100 * by_lang.get(lang, np.nan) for lang in languages]
            ax.bar(positions + (index - (len(models) - 1) / 2) * width, values, width, label=model["name"])
        ax.set_title(config)
        ax.set_xticks(positions, languages)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("precision@1 (%), mean over styles")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(models), 3), fontsize="small")
    legend_rows = -(-len(models) // 3)
    fig.tight_layout(rect=(0, 0.05 * legend_rows / rows + 0.02, 1, 1))
    return fig


def _many_languages_figure(models: list[dict[str, Any]]) -> plt.Figure:
    """Horizontal bars of the per-language average (models side by side) and a config x language heatmap per model."""
    languages = _languages([m["averages"]["per_language"] for m in models])
    configs = sorted({config for m in models for config in m["averages"]["per_config"]})
    height = max(4.0, ROW_INCHES * len(languages) * max(1, len(models) / 2) + 1.6)
    fig, axes = plt.subplots(
        1,
        1 + len(models),
        figsize=(4.5 + 0.55 * len(configs) * len(models) + 1.2, height),
        gridspec_kw={"width_ratios": [4.5] + [0.55 * len(configs) + 0.6] * len(models)},
    )
    bars = axes[0]
    positions = np.arange(len(languages))[::-1]  # English at the top
    height_per_bar = 0.8 / len(models)
    for index, model in enumerate(models):
        per_language = model["averages"]["per_language"]
        values = [100 * per_language.get(lang, np.nan) for lang in languages]
        drawn = bars.barh(
            positions + ((len(models) - 1) / 2 - index) * height_per_bar, values, height_per_bar, label=model["name"]
        )
        if "en" in per_language:
            bars.axvline(100 * per_language["en"], color=drawn.patches[0].get_facecolor(), linestyle="--", linewidth=1)
    bars.set_yticks(positions, languages)
    bars.set_xlim(0, 100)
    bars.set_ylim(-0.6, len(languages) - 0.4)
    bars.set_xlabel("precision@1 (%), mean over configs and styles")
    bars.set_title("per language (dashed: English)")
    bars.grid(axis="x", alpha=0.3)
    handles, labels = bars.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower left", ncol=min(len(models), 3), fontsize="small")
    image = None
    for ax, model in zip(axes[1:], models):
        per_config = model["averages"]["per_config"]
        grid = np.array(
            [[100 * per_config.get(config, {}).get(lang, np.nan) for config in configs] for lang in languages]
        )
        image = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", vmin=0, vmax=100, cmap="viridis")
        ax.set_xticks(np.arange(len(configs)), configs, rotation=60, ha="right", fontsize="small")
        ax.set_yticks(np.arange(len(languages)), languages, fontsize="small")
        ax.set_title(model["name"])
    fig.subplots_adjust(left=0.08, right=0.9, bottom=max(0.1, 1.5 / height), top=1 - 0.5 / height, wspace=0.45)
    if image is not None:
        fig.colorbar(image, ax=list(axes[1:]), fraction=0.04, pad=0.03, label="precision@1 (%)")
    return fig


def results_figure(document: dict[str, Any]) -> plt.Figure:
    """The results figure of ``document`` (the layout depends on how many languages it holds)."""
    models = document["models"]
    languages = _languages([m["averages"]["per_language"] for m in models])
    return _panels_figure(models) if len(languages) <= PANEL_LANGUAGES_MAX else _many_languages_figure(models)


def plot_results(document: dict[str, Any], path: str | Path) -> Path:
    """Draw :func:`results_figure` and save it as PNG."""
    fig = results_figure(document)
    path = Path(path)
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
    return path
