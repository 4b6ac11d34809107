"""The MMMEB runner: protocol prompts, deduplicated and cached candidate embeddings, batched queries,
work split across processes with accelerate, and scores from the ``metrics/mmmeb`` module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from modeling_xvlm2vec.instructions import STYLES, TIES
from modeling_xvlm2vec.prefetch import prefetch
from xvlm2vec.evaluation.cache import EmbeddingCache, candidate_key
from xvlm2vec.evaluation.data import QueryRow, SplitData, config_names, load_split, parse_config, split_names
from xvlm2vec.evaluation.embedders import Embedder
from xvlm2vec.evaluation.prompts import Input, candidate_input, embedder_styles, query_input
from xvlm2vec.progress import bar_disabled
from xvlm2vec.resources import metric_path
from xvlm2vec_common.row_checks import split_name

DEFAULT_METRIC = metric_path()
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
        ties: how a candidate scoring the same as the positive ranks: ``pessimistic`` (above it,
            trec_eval's rule, the default) or ``optimistic`` (below it: the released GPU runs).
        save_prompts: keep a log of every embedded prompt (``Runner.prompt_log``).
        num_workers: threads that load the next batches' images and run the processor while the model
            embeds (0: one after the other); the scores do not depend on it.
    """

    tasks: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=lambda: list(STYLES))
    batch_size: int = 16
    cache_dir: str | None = None
    max_queries: int | None = None
    metric: str = DEFAULT_METRIC
    ties: str = "pessimistic"
    save_prompts: bool = False
    num_workers: int = 0

    def __post_init__(self) -> None:
        unknown = [style for style in self.styles if style not in STYLES]
        if unknown:
            raise ValueError(f"unknown style(s) {unknown}; expected a subset of {list(STYLES)}")
        if self.ties not in TIES:
            raise ValueError(f"unknown tie rule {self.ties!r}; expected one of {list(TIES)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")


def select_splits(data: str, tasks: list[str], languages: list[str]) -> list[tuple[str, str]]:
    """(config, language) pairs of ``data`` matching ``tasks`` and ``languages`` (empty = all).

    A requested task, config or language that matches nothing is a ValueError (``--languages en xx``
    is one: ``xx`` is not silently dropped). Languages are codes (``pt-BR``) or split names (``pt_BR``);
    the pairs hold split names.
    """
    languages = [split_name(lang) for lang in languages]
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


@dataclass
class SplitInputs:
    """One split's protocol inputs under one style.

    ``rows``, ``queries`` and ``lists`` are parallel over kept queries (``lists`` index into the
    distinct ``candidates``, which map each input to its position); ``first_seen`` gives each
    distinct candidate's first (query id, position); ``skipped`` counts the queries left out.
    """

    rows: list[QueryRow] = field(default_factory=list)
    queries: list[Input] = field(default_factory=list)
    lists: list[list[int]] = field(default_factory=list)
    candidates: dict[Input, int] = field(default_factory=dict)
    first_seen: dict[Input, tuple[str, int]] = field(default_factory=dict)
    skipped: int = 0


class Runner:
    """Scores embedders on MMMEB splits.

    ``embedded_rows`` counts the rows actually embedded, as ``candidates`` and ``queries`` (cache
    and in-run hits excluded), and
    ``data_fingerprints`` records each split's fingerprint (``config/language``); with
    ``save_prompts``, ``prompt_log`` holds one dict per embedded query and distinct candidate.
    """

    def __init__(self, config: RunConfig, metric: MetricFn | None = None) -> None:
        self.config = config
        self.cache = EmbeddingCache(config.cache_dir)
        self.state = PartialState()
        if metric is None:
            import evaluate

            metric = evaluate.load(config.metric, keep_in_memory=True).compute
        self.metric = metric
        self.embedded_rows: Counter[str] = Counter()
        self.data_fingerprints: dict[str, str] = {}
        self.prompt_log: list[dict[str, Any]] = []

    def _embed(
        self, embedder: Embedder, split: SplitData, items: list[tuple[str | None, str | None]], kind: str
    ) -> np.ndarray:
        """Embed (prompt, image id) rows, split across processes, in batches; rows return in input order.

        The next batches' images are decoded and prepared (:meth:`Embedder.prepare`) by ``num_workers`` threads
        while the model embeds the current one.
        """
        size, workers = self.config.batch_size, self.config.num_workers
        desc = f"{split.config}/{split.language} {kind}"
        chunks: list[np.ndarray] = []

        def prepare(batch: list[tuple[str | None, str | None]]) -> Any:
            images = [split.image(image_id) for _, image_id in batch]
            return embedder.prepare([prompt for prompt, _ in batch], images, size, workers)

        with self.state.split_between_processes(items) as mine:
            batches = [mine[start : start + size] for start in range(0, len(mine), size)]
            prepared = prefetch(prepare, batches, workers)
            for ready in tqdm(
                prepared, total=len(batches), desc=desc, leave=False, disable=bar_disabled(self.state.is_main_process)
            ):
                chunks.append(embedder.embed_prepared(ready))
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
        """The embedder's width, from the split's first kept query (kept in ``query_store`` for its scoring)."""
        if self.cache.root is None:
            return None
        style = embedder_styles(embedder, self.config.styles)[0]
        for row in split.rows:
            item = query_input(embedder, split.task, split.language, row, style)
            if item is not None:
                return self._vectors(embedder, split, [item], query_store, "queries").shape[1]
        return None

    def split_inputs(self, embedder: Embedder, split: SplitData, style: str | None) -> SplitInputs:
        """The protocol's inputs of one split under ``style``: kept queries and distinct candidates.

        A query the protocol skips (see ``xvlm2vec.evaluation.prompts``) is left out with its list.
        """
        task, lang = split.task, split.language
        inputs = SplitInputs()
        for row in split.rows:
            query = query_input(embedder, task, lang, row, style)
            if query is None:
                inputs.skipped += 1
                continue
            indices = []
            for position, candidate in enumerate(row.candidates):
                item = candidate_input(embedder, task, lang, candidate, style)
                if item not in inputs.candidates:
                    inputs.candidates[item] = len(inputs.candidates)
                    inputs.first_seen[item] = (row.id, position)
                indices.append(inputs.candidates[item])
            inputs.rows.append(row)
            inputs.queries.append(query)
            inputs.lists.append(indices)
        return inputs

    def score_split(
        self,
        embedder: Embedder,
        split: SplitData,
        style: str | None,
        candidate_store: dict[bytes, np.ndarray],
        query_store: dict[bytes, np.ndarray],
        inputs: SplitInputs | None = None,
    ) -> list[np.ndarray]:
        """Each kept query's scores over its own candidate list under ``style`` (cosine of normalised vectors,
        float32).

        Each distinct candidate (same prompt, same image bytes) is scored once per query and its score is
        repeated at each of its positions: identical candidates tie exactly (``ties_at_top``, ``--ties``),
        whatever the order a matrix product sums them in.
        """
        inputs = inputs if inputs is not None else self.split_inputs(embedder, split, style)
        if not inputs.rows:
            return []
        candidates = self._vectors(embedder, split, list(inputs.candidates), candidate_store, "candidates")
        query_vectors = self._vectors(embedder, split, inputs.queries, query_store, "queries")
        scores = []
        for indices, vector in zip(inputs.lists, query_vectors):
            distinct, positions = np.unique(indices, return_inverse=True)
            scores.append((candidates[distinct] @ vector)[positions])
        return scores

    def _log_prompts(self, embedder: Embedder, split: SplitData, style: str | None, inputs: SplitInputs) -> None:
        """Add one prompt-log line per kept query and per distinct candidate of the split."""
        common = {"model": embedder.name, "config": split.config, "language": split.language, "style": style}
        for row, (prompt, image_id) in zip(inputs.rows, inputs.queries):
            self.prompt_log.append(
                {
                    **common,
                    "side": "query",
                    "row_id": row.id,
                    "candidate_index": None,
                    "prompt": prompt,
                    "image_id": image_id,
                    "image_name": split.image_name(image_id),
                }
            )
        for (prompt, image_id), (row_id, position) in inputs.first_seen.items():
            self.prompt_log.append(
                {
                    **common,
                    "side": "candidate",
                    "row_id": row_id,
                    "candidate_index": position,
                    "prompt": prompt,
                    "image_id": image_id,
                    "image_name": split.image_name(image_id),
                }
            )

    def evaluate(self, embedder: Embedder, data: str) -> list[dict[str, Any]]:
        """Score ``embedder`` on every selected split of ``data``: one record per (config, language, style).

        Baselines have no styles: one record per (config, language) with ``style`` None.
        """
        cfg = self.config
        records = []
        pairs = select_splits(data, cfg.tasks, cfg.languages)
        for config, lang in tqdm(
            pairs, desc=f"MMMEB {embedder.name}", disable=bar_disabled(self.state.is_main_process)
        ):
            split = load_split(data, config, lang, cfg.max_queries)
            self.data_fingerprints[f"{config}/{split.language}"] = split.fingerprint
            path = self.cache.path(embedder.fingerprint, split.fingerprint, config, lang)
            query_store: dict[bytes, np.ndarray] = {}
            candidate_store = self.cache.load(path, self._width(embedder, split, query_store))
            stored = len(candidate_store)
            for style in embedder_styles(embedder, cfg.styles):
                inputs = self.split_inputs(embedder, split, style)
                if not inputs.rows:
                    raise ValueError(
                        f"{config}/{split.language}: every query was skipped (null text), nothing to score"
                    )
                if cfg.save_prompts:
                    self._log_prompts(embedder, split, style, inputs)
                scores = self.score_split(embedder, split, style, candidate_store, query_store, inputs)
                result = self.metric(
                    predictions=[s.tolist() for s in scores],
                    references=[r.positive_index for r in inputs.rows],
                    ties=cfg.ties,
                )
                records.append(
                    {
                        "dataset": split.dataset,
                        "task": split.task,
                        "config": config,
                        "language": split.language,
                        "style": style,
                        "skipped_queries": inputs.skipped,
                        **result,
                    }
                )
            if self.state.is_main_process and len(candidate_store) > stored:
                self.cache.save(path, candidate_store)
            self.state.wait_for_everyone()
        return records
