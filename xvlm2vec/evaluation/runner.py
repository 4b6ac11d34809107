"""The MMMEB runner: protocol prompts, deduplicated and cached candidate embeddings, batched queries,
work split across processes with accelerate, and scores from the ``metrics/mmmeb`` module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from modeling_xvlm2vec.instructions import STYLES, compose_prompt, format_text, get_instruction
from xvlm2vec.evaluation.cache import EmbeddingCache, candidate_key
from xvlm2vec.evaluation.data import SplitData, config_names, load_split, parse_config, split_names
from xvlm2vec.evaluation.embedders import Embedder

DEFAULT_METRIC = str(Path(__file__).resolve().parents[2] / "metrics" / "mmmeb")
MetricFn = Callable[..., dict]


@dataclass
class RunConfig:
    """What to evaluate and how.

    Attributes:
        tasks: tasks (``i2t``) or configs (``xtd_i2t``) to run; empty runs every config.
        languages: language splits to run; empty runs every split.
        styles: formatting styles (``plain``, ``punct``, ``newline``).
        batch_size: rows per embedding batch.
        cache_dir: where candidate embeddings are cached; None keeps them in memory only.
        max_queries: score only the first N queries of each split (quick runs); None for all.
        metric: the ``evaluate`` module (path or Hub id) that turns scores into metrics.
    """

    tasks: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=lambda: list(STYLES))
    batch_size: int = 16
    cache_dir: str | None = None
    max_queries: int | None = None
    metric: str = DEFAULT_METRIC

    def __post_init__(self) -> None:
        unknown = [style for style in self.styles if style not in STYLES]
        if unknown:
            raise ValueError(f"unknown style(s) {unknown}; expected a subset of {list(STYLES)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def select_splits(data: str, tasks: list[str], languages: list[str]) -> list[tuple[str, str]]:
    """(config, language) pairs of ``data`` matching ``tasks`` and ``languages`` (empty = all).

    A requested task, config or language that matches nothing is a ValueError (``--languages en xx``
    is one: ``xx`` is not silently dropped).
    """
    configs = config_names(data)
    for config in configs:
        try:
            parse_config(config)
        except ValueError as error:
            raise ValueError(f"--data {data}: not an MMMEB dataset: {error}") from None
    chosen = [c for c in configs if not tasks or c in tasks or parse_config(c)[1] in tasks]
    unmatched = [t for t in tasks if t not in configs and all(parse_config(c)[1] != t for c in configs)]
    if unmatched:
        raise ValueError(f"--tasks {unmatched} match no config of {data} (configs: {configs})")
    splits = {config: split_names(data, config) for config in chosen}
    unknown = [lang for lang in languages if all(lang not in names for names in splits.values())]
    if unknown:
        found = sorted({lang for names in splits.values() for lang in names})
        raise ValueError(f"--languages {unknown} match no split of the chosen configs of {data} (languages: {found})")
    pairs = [(config, lang) for config in chosen for lang in splits[config] if not languages or lang in languages]
    if not pairs:
        raise ValueError(f"no split of {data} matches tasks={tasks or 'all'} languages={languages or 'all'}")
    return pairs


def protocol_prompt(embedder: Embedder, task: str, side: str, language: str, text: str | None, style: str) -> str | None:
    """The text an embedder receives: instruction (when it uses them) composed with the formatted text."""
    formatted = format_text(text, style, question=(task == "vqa" and side == "query")) if text is not None else None
    if not embedder.uses_instructions:
        return formatted
    instruction = get_instruction(task, side, language, table=embedder.instructions)
    if instruction is None:
        return formatted
    return compose_prompt(instruction, formatted)


class Runner:
    """Scores embedders on MMMEB splits.

    ``embedded_rows`` counts the rows actually embedded, as ``candidates`` and ``queries`` (cache
    and in-run hits excluded), and
    ``data_fingerprints`` records each split's fingerprint (``config/language``).
    """

    def __init__(self, config: RunConfig, metric: MetricFn | None = None) -> None:
        self.config = config
        self.cache = EmbeddingCache(config.cache_dir)
        self.state = PartialState()
        if metric is None:
            import evaluate

            if config.metric == DEFAULT_METRIC and not Path(DEFAULT_METRIC).is_dir():
                raise FileNotFoundError(f"bundled metric {DEFAULT_METRIC} not found (installed without the repo?); pass --metric")
            metric = evaluate.load(config.metric, keep_in_memory=True).compute
        self.metric = metric
        self.embedded_rows: Counter[str] = Counter()
        self.data_fingerprints: dict[str, str] = {}

    def _embed(self, embedder: Embedder, split: SplitData, items: list[tuple[str | None, str | None]], kind: str) -> np.ndarray:
        """Embed (prompt, image id) rows, split across processes, in batches; rows return in input order."""
        size = self.config.batch_size
        desc = f"{split.config}/{split.language} {kind}"
        chunks: list[np.ndarray] = []
        with self.state.split_between_processes(items) as mine:
            for start in tqdm(range(0, len(mine), size), desc=desc, leave=False, disable=not self.state.is_main_process):
                batch = mine[start : start + size]
                texts = [prompt for prompt, _ in batch]
                images = [split.image(image_id) for _, image_id in batch]
                chunks.append(embedder.embed(texts, images, size))
        local = [np.concatenate(chunks)] if chunks else []
        self.embedded_rows[kind] += len(items)
        gathered = [part for part in gather_object(local) if len(part)]
        return np.concatenate(gathered)

    def _vectors(
        self,
        embedder: Embedder,
        split: SplitData,
        items: list[tuple[str | None, str | None]],
        store: dict[bytes, np.ndarray],
        kind: str,
    ) -> np.ndarray:
        """Vectors of ``items`` from ``store``, embedding (deduplicated) the ones it lacks into it."""
        keys = [candidate_key(prompt, image_id) for prompt, image_id in items]
        missing: dict[bytes, tuple[str | None, str | None]] = {}
        for key, item in zip(keys, items):
            if key not in store and key not in missing:
                missing[key] = item
        if missing:
            vectors = self._embed(embedder, split, list(missing.values()), kind)
            store.update(zip(missing, vectors))
        return np.stack([store[key] for key in keys])

    def _width(self, embedder: Embedder, split: SplitData, query_store: dict[bytes, np.ndarray]) -> int | None:
        """The embedder's width, from the split's first query (kept in ``query_store`` for its scoring)."""
        if not split.rows or self.cache.root is None:
            return None
        row = split.rows[0]
        item = (protocol_prompt(embedder, split.task, "query", split.language, row.text, self.config.styles[0]), row.image_id)
        return self._vectors(embedder, split, [item], query_store, "queries").shape[1]

    def score_split(self, embedder: Embedder, split: SplitData, style: str, candidate_store: dict[bytes, np.ndarray], query_store: dict[bytes, np.ndarray]) -> list[np.ndarray]:
        """Each query's scores over its own candidate list under ``style`` (cosine of normalised vectors)."""
        task, lang = split.task, split.language
        unique: dict[tuple[str | None, str | None], int] = {}
        lists = []
        for row in split.rows:
            indices = []
            for candidate in row.candidates:
                item = (protocol_prompt(embedder, task, "candidate", lang, candidate.text, style), candidate.image_id)
                indices.append(unique.setdefault(item, len(unique)))
            lists.append(indices)
        candidates = self._vectors(embedder, split, list(unique), candidate_store, "candidates")
        queries = [(protocol_prompt(embedder, task, "query", lang, row.text, style), row.image_id) for row in split.rows]
        query_vectors = self._vectors(embedder, split, queries, query_store, "queries")
        return [candidates[indices] @ vector for indices, vector in zip(lists, query_vectors)]

    def evaluate(self, embedder: Embedder, data: str) -> list[dict[str, Any]]:
        """Score ``embedder`` on every selected split and style of ``data``; one record per (config, language, style)."""
        cfg = self.config
        records = []
        pairs = select_splits(data, cfg.tasks, cfg.languages)
        for config, lang in tqdm(pairs, desc=f"MMMEB {embedder.name}", disable=not self.state.is_main_process):
            split = load_split(data, config, lang, cfg.max_queries)
            self.data_fingerprints[f"{config}/{lang}"] = split.fingerprint
            path = self.cache.path(embedder.fingerprint, split.fingerprint, config, lang)
            query_store: dict[bytes, np.ndarray] = {}
            candidate_store = self.cache.load(path, self._width(embedder, split, query_store))
            stored = len(candidate_store)
            for style in cfg.styles:
                scores = self.score_split(embedder, split, style, candidate_store, query_store)
                result = self.metric(predictions=[s.tolist() for s in scores], references=[r.positive_index for r in split.rows])
                records.append({"dataset": split.dataset, "task": split.task, "config": config, "language": lang, "style": style, **result})
            if self.state.is_main_process and len(candidate_store) > stored:
                self.cache.save(path, candidate_store)
            self.state.wait_for_everyone()
        return records
