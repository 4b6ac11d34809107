"""The MMMEB evaluate module against hand-computed cases, its tie rule and its input errors."""

from __future__ import annotations

import math
from pathlib import Path

import evaluate
import pytest

METRIC_DIR = Path(__file__).resolve().parents[1] / "metrics" / "mmmeb"


@pytest.fixture(scope="module")
def mmmeb():
    return evaluate.load(str(METRIC_DIR))


def test_hand_computed_variable_lengths(mmmeb):
    # Ranks by hand: q0 positive 0.9 is the top of 3 -> rank 1; q1 positive 0.2 under 0.8 -> rank 2;
    # q2 (12 candidates) positive index 3 = 0.5 with six higher scores -> rank 7;
    # q3 (12 candidates) positive 0.0 under eleven higher scores -> rank 12.
    predictions = [
        [0.9, 0.1, 0.3],
        [0.2, 0.8],
        [0.9, 0.8, 0.7, 0.5, 0.6, 0.55, 0.65, 0.1, 0.2, 0.3, 0.4, 0.45],
        [0.0] + [0.1 * i for i in range(1, 12)],
    ]
    references = [0, 0, 3, 0]
    result = mmmeb.compute(predictions=predictions, references=references)
    assert result["num_queries"] == 4
    assert result["precision@1"] == 0.25
    assert result["recall@5"] == 0.5
    assert result["recall@10"] == 0.75
    # Exact float expressions of the same sums: tolerance only covers summation order (1e-12).
    assert result["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 7 + 1 / 12) / 4, abs=1e-12)
    expected_ndcg = (1 + 1 / math.log2(3) + 1 / math.log2(8) + 0) / 4
    assert result["ndcg@10"] == pytest.approx(expected_ndcg, abs=1e-12)


def test_ties_are_pessimistic(mmmeb):
    # One candidate tied with the positive ranks above it: rank 2, whatever the order.
    assert mmmeb.compute(predictions=[[0.5, 0.5, 0.1]])["precision@1"] == 0.0
    assert mmmeb.compute(predictions=[[0.5, 0.1, 0.5]])["mrr"] == 0.5
    # A constant scorer: rank = list length (4), so recall@5 holds but precision@1 does not.
    constant = mmmeb.compute(predictions=[[0.3, 0.3, 0.3, 0.3]])
    assert constant["precision@1"] == 0.0
    assert constant["recall@5"] == 1.0
    assert constant["mrr"] == 0.25


def test_references_default_to_zero_and_positive_index_is_used(mmmeb):
    scores = [[0.1, 0.9, 0.3]]
    assert mmmeb.compute(predictions=scores)["precision@1"] == 0.0
    assert mmmeb.compute(predictions=scores, references=[1])["precision@1"] == 1.0
    assert mmmeb.compute(predictions=scores, references=[2])["mrr"] == 0.5


def test_add_batch_accumulates(mmmeb):
    mmmeb.add_batch(predictions=[[1.0, 0.0]])
    mmmeb.add_batch(predictions=[[0.0, 1.0, 0.5]], references=[2])
    result = mmmeb.compute()
    assert result["num_queries"] == 2
    assert result["precision@1"] == 0.5
    assert result["mrr"] == 0.75


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ([[0.1, 0.2], []], [0, 0], "query 1: empty candidate list"),
        ([[0.1, float("nan")]], [0], "query 0: NaN score at candidate 1"),
        ([[0.1, 0.2]], [2], "query 0: positive index 2 out of range for 2 candidates"),
        ([[0.1, 0.2], [0.3]], [0, -1], "query 1: positive index -1 out of range"),
    ],
)
def test_bad_input_raises_value_error(mmmeb, predictions, references, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        mmmeb.compute(predictions=predictions, references=references)


def test_tie_count_and_optimistic_rule(mmmeb):
    # q0: positive tied with one other at the top; q1: positive tied but below a higher score
    # (not at the top); q2: the positive alone at the top; q3: a three-way tie at the top.
    predictions = [[0.5, 0.5, 0.1], [0.4, 0.9, 0.4], [0.9, 0.1, 0.2], [0.7, 0.7, 0.7, 0.1]]
    pessimistic = mmmeb.compute(predictions=predictions)
    # Pessimistic ranks by hand: 2, 3, 1, 3.
    assert pessimistic["ties_at_top"] == 2
    assert pessimistic["precision@1"] == 0.25
    assert pessimistic["mrr"] == pytest.approx((1 / 2 + 1 / 3 + 1 + 1 / 3) / 4, abs=1e-12)
    # Optimistic ranks (the tied positive wins, as the released GPU sort): 1, 2, 1, 1.
    optimistic = mmmeb.compute(predictions=predictions, ties="optimistic")
    assert optimistic["ties_at_top"] == 2
    assert optimistic["precision@1"] == 0.75
    assert optimistic["mrr"] == pytest.approx((1 + 1 / 2 + 1 + 1) / 4, abs=1e-12)
    with pytest.raises(ValueError, match="unknown tie rule 'lucky'"):
        mmmeb.compute(predictions=predictions, ties="lucky")


def test_one_citation_everywhere(mmmeb):
    # the metric module is published on its own, so it holds a copy of the BibTeX entry every card renders;
    # the copies (module, its README, the project README) must not drift from hub_cards/templates/citation.bib
    from hub_cards.templates_io import citation

    assert mmmeb.info.citation.strip() == citation()
    for readme in (METRIC_DIR / "README.md", METRIC_DIR.parents[1] / "README.md"):
        text = readme.read_text()
        start = text.index("```bibtex\n", text.index("## Citation")) + len("```bibtex\n")
        assert text[start : text.index("```", start)].strip() == citation(), readme
