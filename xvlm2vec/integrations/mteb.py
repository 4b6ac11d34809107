"""MTEB integration: an encoder wrapper for xVLM2Vec folders and MMMEB as MTEB retrieval tasks.

``pip install xvlm2vec[mteb]``. Usage::

    import mteb
    from xvlm2vec.integrations.mteb import XVLM2VecEncoder, mmmeb_tasks

    model = XVLM2VecEncoder("path/or/hub-id", style="plain")
    results = mteb.evaluate(model, mmmeb_tasks("path/to/mmmeb"), cache=None)

- :class:`XVLM2VecEncoder` follows MTEB's encoder protocol. On an MMMEB task it gives each query and
  candidate the protocol's instruction for that task, side (MTEB's ``query`` / ``document``) and
  language (the task's subset), formatted in one of the protocol's styles, exactly as
  ``xvlm2vec eval`` builds its prompts (it embeds through the same code). On any other MTEB task it
  embeds the inputs as they come.
- :func:`mmmeb_tasks` returns one MTEB task per MMMEB config (``xtd_t2i``, ``xm_i2t``, ...): an
  any-to-any multilingual retrieval task whose subsets are the config's languages and whose
  queries each rank their own candidate list (MTEB's ``top_ranked``), scored by precision@1
  (``precision_at_1``, the main score). Data come from a local MMMEB folder or a Hub dataset repo,
  read with ``datasets``; nothing else is downloaded.

MTEB breaks score ties by document id, while ``xvlm2vec eval`` ranks a tied positive below its
ties (the pessimistic rule): the two precision@1 agree whenever no positive ties another candidate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from datasets import Dataset
from datasets import Image as ImageFeature
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.languages.iso_mappings import _hf_lang_to_iso_lang_script
from mteb.models.abs_encoder import AbsEncoder
from mteb.types import PromptType

from hub_cards.templates_io import citation
from modeling_xvlm2vec.instructions import STYLES, candidate_prompt, query_prompt, to_image_tag
from xvlm2vec.evaluation.data import config_names, load_split, parse_config, split_names
from xvlm2vec.evaluation.embedders import XVLM2VecEmbedder
from xvlm2vec.integrations.mteb_meta import build_model_meta

#: MMMEB task -> MTEB category (what the query and the candidates are made of).
CATEGORIES = {"i2t": "i2t", "t2i": "t2i", "c": "i2t", "vqa": "it2t", "vg": "it2i"}
#: Prefix of the MMMEB task names in MTEB (``MMMEB_xtd_t2i``).
TASK_PREFIX = "MMMEB_"
MAIN_SCORE = "precision_at_1"


def mmmeb_config(task_name: str) -> str | None:
    """The MMMEB config an MTEB task name stands for (``MMMEB_xtd_t2i`` -> ``xtd_t2i``), else None."""
    return task_name[len(TASK_PREFIX) :] if task_name.startswith(TASK_PREFIX) else None


class XVLM2VecEncoder(AbsEncoder):
    """MTEB encoder for an xVLM2Vec folder or Hub repo (``AutoModel`` with the model's own code).

    Its ``mteb_model_meta`` is filled from the folder (:func:`~xvlm2vec.integrations.mteb_meta.build_model_meta`).

    Args:
        model_name: folder or Hub id of the model.
        revision: the ``ModelMeta`` revision (default: the weights fingerprint, so MTEB's result cache keeps
            results of different weights apart).
        device: where to run the model.
        style: the protocol's formatting style for MMMEB prompts (``plain``, ``punct``, ``newline``).
        repo_id: the Hub id the model is published under (MTEB's model name and reference).
        training_datasets: MTEB tasks the model saw in training beyond those MTEB lists for its base model.
    """

    def __init__(
        self,
        model_name: str,
        revision: str | None = None,
        *,
        device: str | None = None,
        style: str = "plain",
        repo_id: str | None = None,
        training_datasets: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        self.style = style
        self.embedder = XVLM2VecEmbedder.from_pretrained(model_name, device=device)
        self.model = self.embedder.model
        self.mteb_model_meta = build_model_meta(
            self.model,
            model_name,
            repo_id=repo_id,
            loader=XVLM2VecEncoder,
            loader_kwargs={"style": style},
            training_datasets=training_datasets,
            revision=revision,
        )

    def prompts(
        self, texts: list[str | None], task_name: str, prompt_type: PromptType | None, language: str
    ) -> list[str | None]:
        """The texts the model embeds: the MMMEB protocol's prompts on MMMEB tasks, else the inputs unchanged."""
        config = mmmeb_config(task_name)
        if config is None:
            return texts
        task = parse_config(config)[1]
        build = query_prompt if prompt_type == PromptType.query else candidate_prompt
        prompts = [build(task, language, text, self.style, table=self.embedder.instructions) for text in texts]
        return [None if prompt is None else to_image_tag(prompt, self.embedder.image_tag) for prompt in prompts]

    def encode(
        self,
        inputs: Iterable[dict[str, Any]],
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed MTEB batches (``text`` and/or ``image`` columns) as L2-normalised float32 vectors."""
        texts: list[str | None] = []
        images: list[Any] = []
        for batch in inputs:
            size = len(batch["text"] if "text" in batch else batch["image"])
            texts.extend(batch.get("text") or [None] * size)
            images.extend(batch.get("image") or [None] * size)
        prompts = self.prompts(texts, task_metadata.name, prompt_type, hf_subset)
        return self.embedder.embed(prompts, images, kwargs.get("batch_size", 16))


def _split_data(source: str, config: str, language: str, category: str) -> RetrievalSplitData:
    """One MMMEB split as MTEB retrieval data: deduplicated candidates, each query's own list as ``top_ranked``."""
    split = load_split(source, config, language)
    # A query the protocol skips (null text where its instruction takes one) is left out, as ``xvlm2vec eval`` does.
    rows = [row for row in split.rows if query_prompt(split.task, split.language, row.text, STYLES[0]) is not None]
    doc_ids: dict[tuple[str | None, str | None], str] = {}
    top_ranked: dict[str, list[str]] = {}
    relevant: dict[str, dict[str, int]] = {}
    for row in rows:
        qid = str(row.id)
        ids = [doc_ids.setdefault((c.text, c.image_id), f"c{len(doc_ids)}") for c in row.candidates]
        top_ranked[qid] = list(dict.fromkeys(ids))
        relevant[qid] = {ids[row.positive_index]: 1}
    keys = list(doc_ids)
    if category.endswith("2t"):
        corpus = Dataset.from_dict({"id": list(doc_ids.values()), "text": [text for text, _ in keys]})
    else:
        corpus = Dataset.from_dict({"id": list(doc_ids.values()), "image": [split.image(image) for _, image in keys]})
        corpus = corpus.cast_column("image", ImageFeature())
    columns: dict[str, list] = {"id": [str(row.id) for row in rows]}
    if category.startswith(("t", "it")):
        columns["text"] = [row.text for row in rows]
    if category.startswith("i"):
        columns["image"] = [split.image(row.image_id) for row in rows]
    queries = Dataset.from_dict(columns)
    if "image" in columns:
        queries = queries.cast_column("image", ImageFeature())
    return RetrievalSplitData(corpus=corpus, queries=queries, relevant_docs=relevant, top_ranked=top_ranked)


def mmmeb_task(source: str, config: str, revision: str | None = None) -> AbsTaskRetrieval:
    """The MTEB task of one MMMEB config of ``source`` (local folder or Hub dataset repo); subsets = its languages."""
    dataset, task = parse_config(config)
    if task not in CATEGORIES:
        raise ValueError(f"config {config!r}: unknown MMMEB task {task!r}")
    category = CATEGORIES[task]
    languages = split_names(source, config)
    eval_langs = {}
    for lang in languages:
        iso = _hf_lang_to_iso_lang_script(lang)
        if iso is None:
            raise ValueError(f"config {config!r}: language {lang!r} has no ISO 639 code MTEB knows")
        eval_langs[lang] = [iso]
    metadata = TaskMetadata(
        name=f"{TASK_PREFIX}{config}",
        description=f"MMMEB {dataset} {task}: rank each query's own candidate list "
        "(first candidate positive in the release).",
        reference="https://arxiv.org/abs/2503.09313",
        dataset={"path": source, "revision": revision or "local"},
        type="Any2AnyMultilingualRetrieval",
        category=category,
        eval_splits=["test"],
        eval_langs=eval_langs,
        main_score=MAIN_SCORE,
        date=("2025-01-01", "2025-03-12"),
        domains=["Encyclopaedic", "Written"],
        task_subtypes=["Image Text Retrieval"],
        license="not specified",
        annotations_creators="derived",
        dialect=[],
        modalities=["image", "text"],
        sample_creation="found",
        bibtex_citation=citation(),
    )

    def load_data(self: AbsTaskRetrieval, num_proc: int | None = None, **kwargs: Any) -> None:
        """Read every language of the config with ``datasets`` (no download beyond the data source)."""
        if self.data_loaded:
            return
        self.dataset = {lang: {"test": _split_data(source, config, lang, category)} for lang in self.hf_subsets}
        self.data_loaded = True

    cls = type(
        f"MMMEB_{config}", (AbsTaskRetrieval,), {"metadata": metadata, "load_data": load_data, "k_values": (1, 5, 10)}
    )
    return cls()


def mmmeb_tasks(
    source: str, configs: Iterable[str] | None = None, revision: str | None = None
) -> list[AbsTaskRetrieval]:
    """One MTEB task per MMMEB config of ``source`` (all configs, or the ``configs`` named)."""
    available = config_names(source)
    chosen = list(configs) if configs is not None else available
    unknown = [config for config in chosen if config not in available]
    if unknown:
        raise ValueError(f"{source}: no MMMEB config {unknown} (configs: {available})")
    return [mmmeb_task(source, config, revision) for config in chosen]


__all__ = ["XVLM2VecEncoder", "mmmeb_config", "mmmeb_task", "mmmeb_tasks"]
