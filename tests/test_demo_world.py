"""The demo's synthetic world: grammar, split, rendering, and the released formats the builders read."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest

from dataset_builders.mmmeb import build_mmmeb
from dataset_builders.parallel import build_parallel
from modeling_xvlm2vec.instructions import CANONICAL_IMAGE_TAG
from xvlm2vec.testing.fixtures import write_mmmeb_release, write_parallel_release
from xvlm2vec.testing.lexicon import LANGUAGES, Scene, answer_options, caption, class_name, vocabulary
from xvlm2vec.testing.world import (
    RELEASE_TASKS,
    WorldConfig,
    all_scenes,
    build_world,
    split_scenes,
    task_examples,
    task_languages,
)

SMALL = WorldConfig(seed=3, train_renders=1, vg_train_images=12, vg_test_images=10, candidates=4)


@pytest.fixture(scope="module")
def world():
    return build_world(SMALL)


def test_grammar_agrees_in_every_language():
    scene = Scene("square", "red", "small", "right", 3)
    assert caption(scene, "en") == "three small red squares on the right"
    assert caption(scene, "it") == "tre quadrati rossi piccoli a destra"
    assert caption(scene, "es") == "tres cuadrados rojos pequeños a la derecha"
    assert caption(scene, "fr") == "trois petits carrés rouges à droite"
    assert caption(scene, "de") == "drei kleine rote Quadrate rechts"
    assert caption(Scene("diamond", "purple", "large", "left", 1), "de") == "eine große lila Raute links"
    assert class_name("circle", "green", "de") == "grüner Kreis"
    assert class_name("triangle", "blue", "fr") == "triangle bleu"


def test_every_scene_has_a_distinct_caption_per_language():
    scenes = all_scenes()
    assert len(scenes) == 4 * 6 * 2 * 2 * 3
    for lang in LANGUAGES:
        assert len({caption(scene, lang) for scene in scenes}) == len(scenes), lang
        assert {caption(scene, lang) for scene in scenes} <= set(vocabulary(lang))
    assert len(set(answer_options("colour", "it").values())) == 6


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unknown language 'sw'"):  # pt is the world's sixth language now
        caption(Scene("circle", "red", "small", "left", 1), "sw")


def test_split_shares_no_combination_and_keeps_every_value_in_training():
    train, test = split_scenes(seed=5, test_fraction=0.2)
    assert not {s.key() for s in train} & {s.key() for s in test}
    assert len(train) + len(test) == 288 and len(test) == round(288 * 0.2)
    for attribute in ("shape", "colour", "size", "side", "count"):
        assert {getattr(s, attribute) for s in test} <= {getattr(s, attribute) for s in train}
    assert split_scenes(seed=6, test_fraction=0.2)[1] != test  # the seed matters


def test_rendering_is_deterministic_and_shows_the_colour(world):
    again = build_world(SMALL)
    first, second = world.test[0], again.test[0]
    assert first.name == second.name
    assert np.array_equal(np.asarray(first.image), np.asarray(second.image))
    pixels = np.asarray(first.image).reshape(-1, 3).astype(int)
    red, green, blue = {
        "red": (220, 30, 30),
        "green": (30, 170, 40),
        "blue": (30, 60, 220),
        "yellow": (235, 215, 20),
        "purple": (140, 40, 170),
        "orange": (245, 140, 20),
    }[first.scene.colour]
    # jitter is +-12 per channel, so the object's pixels lie within 12 of the palette colour
    close = (np.abs(pixels - np.array([red, green, blue])) <= 12).all(axis=1)
    assert close.sum() > 20


def test_tasks_are_parallel_across_languages_and_first_candidate_is_positive(world):
    for task in RELEASE_TASKS:
        en, fr = task_examples(world, "test", task, "en"), task_examples(world, "test", task, "fr")
        assert len(en) == len(fr) > 0
        assert [e.query_image and e.query_image.name for e in en] == [f.query_image and f.query_image.name for f in fr]
    i2t = task_examples(world, "test", "i2t", "it")
    assert all(e.candidate_texts[0] == caption(e.query_image.scene, "it") for e in i2t)
    assert all(len(set(e.candidate_texts)) == SMALL.candidates for e in i2t)
    t2i = task_examples(world, "test", "t2i", "en")
    assert all(e.candidate_images[0].scene == Scene(*_parse(e.candidate_images[0].name)) for e in t2i)


def _parse(name: str) -> tuple:
    shape, colour, size, side, count = name.split("_")[1].split("-")
    return shape, colour, size, side, int(count)


def test_mmmeb_release_builds_with_the_project_builder(world, tmp_path):
    files = write_mmmeb_release(world, tmp_path / "release")
    # the release's languages, plus Portuguese (the world's sixth language) where the release has all five
    assert len(files) == sum(len(task_languages(task)) for task in RELEASE_TASKS) == 6 + 6 + 6 + 2 + 2
    assert {path.name for path in files} >= {
        "xtd_pt_1000_formatted_t2i.jsonl",
        "imagenet-1k-val_pt_1000_formatted_c.jsonl",
    }
    report = build_mmmeb(tmp_path / "release", tmp_path / "built")
    assert report.rows_out == report.rows_in > 0
    rows = datasets.load_dataset(str(tmp_path / "built"), "xtd_i2t", split="de")
    expected = task_examples(world, "test", "i2t", "de")
    assert rows[0]["candidate_texts"] == expected[0].candidate_texts and rows[0]["positive_index"] == 0
    portuguese = datasets.load_dataset(str(tmp_path / "built"), "xtd_i2t", split="pt")
    assert portuguese[0]["candidate_texts"] == task_examples(world, "test", "i2t", "pt")[0].candidate_texts
    vg = datasets.load_dataset(str(tmp_path / "built"), "flickr30k_entities_vg", split="fr")
    assert len(vg) == SMALL.vg_test_images and len(vg[0]["candidate_images"]) == SMALL.candidates


def test_parallel_release_builds_and_pairs_match(world, tmp_path):
    path = write_parallel_release(world, tmp_path / "release")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {row["lang"] for row in lines} == {"it", "es", "fr", "de", "pt"}
    for row in lines:
        assert (
            (CANONICAL_IMAGE_TAG in row["text_en"]) == (CANONICAL_IMAGE_TAG in row["text_lang"]) == bool(row["img_en"])
        )
    italian = {row["text_en"]: row["text_lang"] for row in lines if row["lang"] == "it"}
    scene = world.train[0].scene
    assert italian[caption(scene, "en")] == caption(scene, "it")
    test_captions = {caption(p.scene, "en") for p in world.test}
    assert not any(c in row["text_en"] for c in test_captions for row in lines)  # held-out scenes never reach training
    report = build_parallel(tmp_path / "release", tmp_path / "built", max_rejects=0)
    assert report.rows_out == len(lines)
