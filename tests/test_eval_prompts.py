"""MMMEB prompts against the hand-written table of the released evaluation's strings
(``released_prompts.py``): every task x side x language x style, for two backbones' image tags,
the skipped null-text queries, and the dual-encoder baselines' inputs."""

from __future__ import annotations

import pytest
from released_prompts import BASELINE, EXPECTED, EXPECTED_QWEN2_VL_SAMPLES, LANGUAGES_OF, QWEN2_VL_TAG, TEXTS

import modeling_xvlm2vec  # noqa: F401  (registers the backbones)
from modeling_xvlm2vec.backbones import get_backbone
from modeling_xvlm2vec.instructions import INSTRUCTIONS, STYLES
from xvlm2vec.evaluation.data import Candidate, QueryRow
from xvlm2vec.evaluation.prompts import candidate_input, embedder_styles, query_input

PHI_TAG = "<|image_1|>"
IMAGE = "sha256:img"


class Stub:
    """The attributes of an embedder that decide its prompts."""

    def __init__(self, image_tag: str, uses_instructions: bool = True) -> None:
        self.image_tag = image_tag
        self.uses_instructions = uses_instructions
        self.instructions = INSTRUCTIONS
        self.languages = None  # the shipped registry (baseline class templates)


def has_query_image(task: str) -> bool:
    return task != "t2i"


def build(embedder: Stub, task: str, side: str, lang: str, style: str | None):
    """The (prompt, image id) the project gives ``embedder`` for the table's sample of (task, side, lang)."""
    text = TEXTS.get((task, side), {}).get(lang)
    if side == "query":
        row = QueryRow("q0", text, IMAGE if has_query_image(task) else None, [Candidate("x", None)], 0)
        return query_input(embedder, task, lang, row, style)
    image_candidate = task in ("t2i", "vg")
    return candidate_input(
        embedder, task, lang, Candidate(None if image_candidate else text, IMAGE if image_candidate else None), style
    )


def test_table_covers_every_task_side_language_style():
    cells = {
        (task, side, lang, style)
        for task, langs in LANGUAGES_OF.items()
        for side in ("query", "candidate")
        for lang in langs
        for style in STYLES
    }
    assert set(EXPECTED) == cells and len(cells) == 132
    assert {task: tuple(INSTRUCTIONS[task]["query"]) for task in INSTRUCTIONS} == LANGUAGES_OF


@pytest.mark.parametrize("backbone", ["phi3_v", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_next"])
def test_prompts_equal_the_released_strings(backbone):
    tag = get_backbone(backbone).image_tag
    embedder = Stub(tag)
    wrong = {}
    for (task, side, lang, style), expected in EXPECTED.items():
        prompt, image = build(embedder, task, side, lang, style)
        expected = expected.replace(PHI_TAG, tag)
        if prompt != expected:
            wrong[(task, side, lang, style)] = (prompt, expected)
        # An input carries an image exactly when its prompt has the backbone's tag.
        assert (image is not None) == (tag in prompt), (task, side, lang, style)
    assert wrong == {}


def test_qwen2_vl_strings_written_out():
    assert get_backbone("qwen2_vl").image_tag == QWEN2_VL_TAG
    embedder = Stub(QWEN2_VL_TAG)
    for (task, side, lang, style), expected in EXPECTED_QWEN2_VL_SAMPLES.items():
        assert build(embedder, task, side, lang, style)[0] == expected


@pytest.mark.parametrize("task", ["t2i", "vqa", "vg"])
def test_null_text_query_is_skipped(task):
    row = QueryRow("q0", None, IMAGE if has_query_image(task) else None, [Candidate("x", None)], 0)
    for style in STYLES:
        assert query_input(Stub(PHI_TAG), task, "en", row, style) is None
    # Baselines embed the image alone, so only a text query (t2i) is skipped for them.
    assert (query_input(Stub(PHI_TAG, uses_instructions=False), task, "en", row, None) is None) == (task == "t2i")


def test_unknown_style_is_refused():
    row = QueryRow("q0", "a dog", None, [Candidate("x", None)], 0)
    with pytest.raises(ValueError, match="unknown formatting style 'fancy'"):
        query_input(Stub(PHI_TAG), "t2i", "en", row, "fancy")


def test_baseline_inputs_equal_the_released_ones():
    embedder = Stub(PHI_TAG, uses_instructions=False)
    assert embedder_styles(embedder, list(STYLES)) == [None]
    assert embedder_styles(Stub(PHI_TAG), list(STYLES)) == list(STYLES)
    for (task, side), by_lang in BASELINE.items():
        for lang, (text, with_image) in by_lang.items():
            prompt, image = build(embedder, task, side, lang, None)
            assert (prompt, image is not None) == (text, with_image), (task, side, lang)
