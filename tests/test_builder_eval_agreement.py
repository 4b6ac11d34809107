"""What the builders accept, evaluation and training can process (issue 21, item 5).

Each case is a hostile or unlucky input a user meets: a release file with a region code (``pt-BR``),
an image of extreme aspect ratio (Qwen2-VL's processor aborts on it), a 9,000-character text, image
tags without images, a release file linking outside the source, a card whose ``data_files`` leave the
dataset folder, a repeated ``--languages`` code. The builders must reject each bad row as a counted
rejection naming its file and line; eval must refuse what it cannot run before it runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_dataset
from PIL import Image
from test_eval_runner import ColourEmbedder, write_mmmeb_folder

from dataset_builders.mmmeb import build_mmmeb
from dataset_builders.parallel import build_parallel
from modeling_xvlm2vec.instructions import INSTRUCTIONS
from xvlm2vec.cli import main as cli_main
from xvlm2vec.evaluation.runner import RunConfig, Runner
from xvlm2vec.training.collator import ParallelCollator

I2T = "xtd_{lang}_1000_formatted_i2t.jsonl"
TAG = "<|image_1|>"


@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(RunConfig().metric).compute


def mmmeb_release(root: Path, lines: dict[str, list[dict]]) -> Path:
    """An i2t release: ``{lang: records}``, images ``0`` (red), ``1`` (blue) and ``thin`` (1 x 300 pixels)."""
    src = root / "src"
    (src / "xtd_images").mkdir(parents=True)
    for name, size, colour in (("0", (8, 8), "red"), ("1", (8, 8), "blue"), ("thin", (1, 300), "green")):
        Image.new("RGB", size, colour).save(src / "xtd_images" / f"{name}.png")
    for lang, records in lines.items():
        (src / I2T.format(lang=lang)).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return src


GOOD = {"img": "0.png", "captions": ["a red square", "a blue square"]}


def test_region_language_builds_and_evaluates(tmp_path, metric):
    """docs/datasets.md promises any language code in a file name: ``pt-BR`` builds and evaluates as ``pt-BR``."""
    src = mmmeb_release(tmp_path, {"en": [GOOD], "pt-BR": [GOOD, {**GOOD, "img": "1.png"}]})
    report = build_mmmeb(src, tmp_path / "built")
    assert report.passed and report.rows_out == 3
    runner = Runner(RunConfig(languages=["pt-BR"], styles=["plain"]), metric=metric)
    english = {
        task: {side: {**by_lang, "pt-BR": by_lang["en"]} for side, by_lang in sides.items()}
        for task, sides in INSTRUCTIONS.items()
    }
    embedder = ColourEmbedder(instructions=english)
    (record,) = runner.evaluate(embedder, str(tmp_path / "built"))
    assert (record["config"], record["language"], record["num_queries"]) == ("xtd_i2t", "pt-BR", 2)


def test_extreme_aspect_ratio_and_long_text_are_counted_rejections(tmp_path):
    """A 1 x 300 image (ratio 300 > 200, Qwen2-VL's limit) and a 9,000-character caption: one rejection each, by
    file and line; the good rows are built."""
    long_caption = {**GOOD, "captions": ["x" * 9000, "a blue square"]}
    src = mmmeb_release(tmp_path, {"en": [GOOD, {**GOOD, "img": "thin.png"}, long_caption, GOOD | {"id": "g2"}]})
    report = build_mmmeb(src, tmp_path / "built", max_rejects=None)
    assert report.rejected == {"extreme_aspect_ratio": 1, "text_too_long": 1}
    wheres = {example["reason"]: example["where"] for example in report.examples}
    assert wheres["extreme_aspect_ratio"].endswith(f"{I2T.format(lang='en')}:2")
    assert wheres["text_too_long"].endswith(f"{I2T.format(lang='en')}:3")
    assert report.rows_out == 2 and report.balanced


def test_eval_refuses_data_it_cannot_process(tmp_path, metric):
    """A dataset built elsewhere with a 100,000-character query is refused with one message naming the query,
    before anything is embedded (today: minutes and gigabytes for that one row)."""
    data = write_mmmeb_folder(
        tmp_path, {"toy_t2i": {"en": [{"id": "long", "query_text": "red " * 25_000, "candidate_texts": ["red"]}]}}
    )
    embedder = ColourEmbedder()
    with pytest.raises(ValueError, match=r"toy_t2i/en query 'long': query text holds 100000 characters"):
        Runner(RunConfig(styles=["plain"]), metric=metric).evaluate(embedder, str(data))
    assert embedder.seen == []


def test_corpus_rows_the_builder_accepts_are_rows_training_accepts(tmp_path):
    """Image tags and images must agree the same way in ``build parallel`` and in the training collator."""
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(src / "images" / "a.png")
    rows = [
        {
            "id": 0,
            "text_en": f"{TAG}\na red square",
            "text_lang": f"{TAG}\nun quadrato rosso",
            "img_en": "images/a.png",
        },
        {"id": 1, "text_en": f"{TAG} a cat", "text_lang": f"{TAG} un gatto", "img_en": None},  # tags, no image
        {"id": 2, "text_en": "a dog", "text_lang": f"{TAG}\nun cane", "img_en": None},  # a tag on one side only
        {"id": 3, "text_en": "a dog", "text_lang": "un cane", "img_en": None},
        {"id": 4, "text_en": f"{TAG}{TAG}\ntwo", "text_lang": f"{TAG}{TAG}\ndue", "img_en": "images/a.png"},
    ]
    lines = [{**row, "img_lang": row["img_en"], "lang": "it"} for row in rows]
    (src / "parallel_shuffled.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = build_parallel(src, tmp_path / "built", max_dev_rows=0)
    assert report.rejected == {"image_tag_mismatch": 2, "lost_image_tag": 1}
    assert sorted(e["where"].rsplit(":", 1)[1].split()[0] for e in report.examples) == ["2", "3", "5"]
    built = load_dataset(str(tmp_path / "built"), "all", split="train")
    collator = ParallelCollator(lambda *args, **kwargs: None)
    good, rejected = collator.clean(list(built))
    assert (len(good), rejected) == (2, [])


def test_release_file_linking_outside_the_source_is_never_read(tmp_path):
    """docs/datasets.md: symlinks resolving outside the root are refused; a release file is no exception."""
    src = mmmeb_release(tmp_path, {"en": [GOOD]})
    outside = tmp_path / "elsewhere" / "secret.jsonl"
    outside.parent.mkdir()
    outside.write_text(json.dumps(GOOD) + "\n")
    (src / I2T.format(lang="it")).symlink_to(outside)
    report = build_mmmeb(src, tmp_path / "built")
    assert report.split_rows == {"xtd_i2t/en": 1}
    assert any("linking outside the source" in note and I2T.format(lang="it") in note for note in report.notes)


def test_eval_refuses_a_card_whose_data_files_leave_the_folder(tmp_path):
    """A dataset card may not make eval read parquet files outside the dataset folder."""
    from xvlm2vec.evaluation.data import load_split

    elsewhere = write_mmmeb_folder(
        tmp_path / "elsewhere", {"toy_t2i": {"en": [{"id": "a", "query_text": "red", "candidate_texts": ["red"]}]}}
    )
    data = tmp_path / "data"
    data.mkdir()
    card = (elsewhere / "README.md").read_text().replace("path: toy_t2i/", "path: ../elsewhere/toy_t2i/")
    (data / "README.md").write_text(card)
    with pytest.raises(ValueError, match="outside the dataset folder"):
        load_split(str(data), "toy_t2i", "en")
    link = tmp_path / "linked"
    link.mkdir()
    (link / "toy_t2i").symlink_to(elsewhere / "toy_t2i")  # the pattern stays inside, the files do not
    (link / "README.md").write_text((elsewhere / "README.md").read_text())
    with pytest.raises(ValueError, match="links outside the dataset folder"):
        load_split(str(link), "toy_t2i", "en")


def test_repeated_language_codes_are_refused(tmp_path, capsys):
    """``--languages it,it`` would read every translation twice: one line, exit 2, before any work."""
    for folder in ("mmeb", "journals", "images"):
        (tmp_path / folder).mkdir()
    argv = ["build", "parallel", "--mmeb-train", str(tmp_path / "mmeb"), "--translations", str(tmp_path / "journals")]
    argv += ["--images", str(tmp_path / "images"), "--output-dir", str(tmp_path / "out"), "--languages", "it,it"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --languages: it given more than once"]
    assert not (tmp_path / "out").exists()


def test_shared_checks_are_the_same_objects_on_both_sides():
    """One module: the builders, eval and the collator use ``xvlm2vec_common.row_checks``' functions."""
    import dataset_builders.mmmeb
    import dataset_builders.parallel
    import xvlm2vec.evaluation.data
    import xvlm2vec.training.collator
    from xvlm2vec_common import row_checks

    assert dataset_builders.mmmeb.check_text is row_checks.check_text is xvlm2vec.evaluation.data.check_text
    assert dataset_builders.parallel.check_image_tags is row_checks.check_image_tags
    assert xvlm2vec.training.collator.check_image_tags is row_checks.check_image_tags
