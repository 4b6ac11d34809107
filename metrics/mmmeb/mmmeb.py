"""MMMEB retrieval metric: precision@1, recall@5, recall@10, MRR and nDCG@10 over per-query candidate lists.

Every query comes with its own candidate list (lists may have different lengths) and exactly one
positive candidate. ``predictions`` holds each query's similarity scores over its candidates and
``references`` the index of the positive in that list (0 in the MMMEB release, the default).

Tie rule (default ``ties="pessimistic"``, order-independent, as trec_eval): the positive's rank is
1 plus the number of *other* candidates whose score is greater than **or equal to** the positive's
score. A candidate tied with the positive therefore ranks above it, so a model that gives every
candidate the same score gets rank = list length, never a lucky precision@1.
``ties="optimistic"`` ranks the positive above every candidate tied with it (1 plus the number of
strictly greater scores): what the released evaluation got on GPU, where a stable sort keeps the
positive, listed first, ahead of its ties. ``ties_at_top`` counts the queries whose positive
shares the top score with at least one other candidate (the queries the two rules can disagree on
at precision@1).
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_CITATION = """\
@misc{musacchio2025xvlm2vec,
  title         = {xVLM2Vec: Adapting LVLM-based embedding models to multilinguality using Self-Knowledge Distillation},
  author        = {Musacchio, Elio and Siciliani, Lucia and Basile, Pierpaolo and Semeraro, Giovanni},
  year          = {2025},
  eprint        = {2503.09313},
  archivePrefix = {arXiv},
}
"""

_DESCRIPTION = """\
Ranking metrics of the MMMEB benchmark (multilingual multimodal embeddings). Each query is scored
against its own candidate list; the positive candidate's rank gives precision@1 (the headline
score), recall@5, recall@10, mean reciprocal rank and nDCG@10 (one relevant item, so the ideal
DCG is 1). Ties are pessimistic by default: a candidate scoring the same as the positive ranks
above it (``ties="optimistic"``: below it). ``ties_at_top`` counts queries whose positive is tied
at the top.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): for every query, its scores over its own candidate
        list (higher is more similar). Lists may differ in length; none may be empty or hold NaN.
    references (`list` of `int`, optional): for every query, the index of the positive candidate
        in its list. Defaults to 0 for every query (the MMMEB release puts the positive first).
    ties (`str`, optional): `"pessimistic"` (default: candidates tied with the positive rank above
        it) or `"optimistic"` (they rank below it).
Returns:
    `dict` with `precision@1`, `recall@5`, `recall@10`, `mrr`, `ndcg@10` (fractions in [0, 1]),
    `num_queries` and `ties_at_top` (queries whose positive shares the top score with another
    candidate).
Raises:
    ValueError: an empty candidate list, a NaN score, or a positive index outside its list; the
        message names the query's position.
Examples:
    >>> import evaluate
    >>> mmmeb = evaluate.load("metrics/mmmeb")
    >>> mmmeb.compute(predictions=[[0.9, 0.1, 0.3], [0.2, 0.8]], references=[0, 0])["precision@1"]
    0.5
"""

CUTOFFS = (5, 10)
TIE_RULES = ("pessimistic", "optimistic")
NDCG_CUTOFF = 10


def positive_rank(scores: np.ndarray, positive_index: int, query_position: int = 0, ties: str = "pessimistic") -> int:
    """Return the 1-based rank of the positive; ``ties`` says whether tied candidates rank above it (pessimistic) or
    below.

    ``query_position`` only names the query in error messages.
    """
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; expected one of {list(TIE_RULES)}")
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"query {query_position}: empty candidate list")
    if np.isnan(scores).any():
        raise ValueError(f"query {query_position}: NaN score at candidate {int(np.flatnonzero(np.isnan(scores))[0])}")
    if not 0 <= positive_index < scores.size:
        raise ValueError(
            f"query {query_position}: positive index {positive_index} out of range for {scores.size} candidates"
        )
    positive = scores[positive_index]
    if ties == "optimistic":
        return 1 + int(np.count_nonzero(scores > positive))
    # Candidates scoring >= the positive include the positive itself: that count is the rank.
    return int(np.count_nonzero(scores >= positive))


def tied_at_top(scores: np.ndarray, positive_index: int) -> bool:
    """True when the positive has the top score and at least one other candidate has the same score."""
    positive = scores[positive_index]
    return bool(positive == scores.max() and np.count_nonzero(scores == positive) > 1)


def ranking_metrics(ranks: np.ndarray) -> dict[str, float]:
    """Aggregate 1-based positive ranks into precision@1, recall@5/@10, MRR and nDCG@10."""
    if ranks.size == 0:
        raise ValueError("no queries to score")
    ranks = ranks.astype(np.float64)
    result = {"precision@1": float(np.mean(ranks == 1))}
    for k in CUTOFFS:
        result[f"recall@{k}"] = float(np.mean(ranks <= k))
    result["mrr"] = float(np.mean(1.0 / ranks))
    gains = np.where(ranks <= NDCG_CUTOFF, 1.0 / np.log2(ranks + 1.0), 0.0)
    result[f"ndcg@{NDCG_CUTOFF}"] = float(np.mean(gains))
    result["num_queries"] = int(ranks.size)
    return result


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Mmmeb(evaluate.Metric):
    """The MMMEB ranking metric (precision@1 headline) as an ``evaluate`` module."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2503.09313"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs) -> None:
        """Add queries; ``references`` defaults to 0 (positive first) for every query."""
        if predictions is not None and references is None:
            references = [0] * len(predictions)
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs) -> None:
        """Add one query; ``reference`` defaults to 0 (positive first)."""
        if prediction is not None and reference is None:
            reference = 0
        super().add(prediction=prediction, reference=reference, **kwargs)

    def compute(self, *, predictions=None, references=None, **kwargs) -> dict | None:
        """Score the queries given here and/or added before; ``references`` defaults to 0 per query."""
        if predictions is not None and references is None:
            references = [0] * len(predictions)
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, ties: str = "pessimistic") -> dict:
        lists = [np.asarray(scores, dtype=np.float64) for scores in predictions]
        ranks = np.array(
            [
                positive_rank(scores, int(positive), position, ties)
                for position, (scores, positive) in enumerate(zip(lists, references))
            ],
            dtype=np.int64,
        )
        result = ranking_metrics(ranks)
        result["ties_at_top"] = sum(tied_at_top(scores, int(positive)) for scores, positive in zip(lists, references))
        return result
