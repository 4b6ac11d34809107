"""A language added only through a language file (Swahili, unknown to the shipped registry) flows
through instructions, translation (a tiny random T5), the corpus build, the MMMEB build, eval and
the model card, with no code change: only files and command lines."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from dataset_builders.translate import translate_mmeb_train
from hub_cards.model_card import render_model_card
from modeling_xvlm2vec.languages import load_languages, read_language_file
from xvlm2vec.cli import main
from xvlm2vec.testing.fixtures import write_mmeb_train, write_mmmeb
from xvlm2vec.testing.tiny_model import save_tiny_model

TAG = "<|image_1|>\n"
SUBSETS = "OK-VQA,MSCOCO_t2i"
# what a person writes for the instructions the tiny random model could not translate
BY_HAND = {
    "t2i": {"query": "Nipatie picha ya kila siku inayolingana na maelezo uliyopewa: {text}"},
    "vqa": {"query": TAG + "Wakilisha picha uliyopewa kwa swali lifuatalo: {text}"},
    "vg": {"query": TAG + 'Chagua sehemu ya picha inayotenga kitu kilichoitwa "{text}"'},
}


class SwahiliStandIn:
    """A deterministic MT stand-in for the corpus rows: swaps the markers, marks every part."""

    def translate(self, texts: Sequence[str], lang: str) -> list[str]:
        return [t.replace("Question:", "Swali: [sw]").replace("Answer:", "Jibu: [sw]") for t in texts]


def test_a_language_from_a_file_flows_to_the_card(tmp_path: Path, capsys) -> None:
    from test_datasets_translate import _tiny_t5

    languages_file = tmp_path / "sw.json"
    languages_file.write_text('{"format": "xvlm2vec-languages/1", "languages": {"sw": {"name": "Swahili"}}}')

    # 1. instructions, translated by the (tiny) MT model; what it lost is refused and written by hand
    _tiny_t5(tmp_path / "t5")
    argv = [
        "instructions",
        "translate",
        "--model",
        str(tmp_path / "t5"),
        "--languages",
        "sw",
        "--output",
        str(languages_file),
        "--max-new-tokens",
        "6",
        "--partial",
    ]
    assert main(argv) == 0
    entry = read_language_file(languages_file)["sw"]
    assert entry.name == "Swahili" and entry.instructions["c"]["query"].startswith(TAG)
    text = json.loads(languages_file.read_text())
    for task, sides in BY_HAND.items():
        text["languages"]["sw"]["instructions"].setdefault(task, {}).update(sides)
    text["languages"]["sw"]["markers"] = {"question": "Swali", "answer": "Jibu"}  # as reviewed by a person
    languages_file.write_text(json.dumps(text, ensure_ascii=False))
    registry = load_languages(languages_file)
    assert registry.instruction_table()["t2i"]["query"]["sw"] == BY_HAND["t2i"]["query"]

    # 2. the corpus translated by the tiny MT model: every row journalled (its random words are kept as rejects)
    mmeb = write_mmeb_train(tmp_path / "mmeb", rows_per_subset=4, subsets=tuple(SUBSETS.split(",")))
    common = [
        "--languages",
        "sw",
        "--languages-file",
        str(languages_file),
        "--subsets",
        SUBSETS,
        "--rows-per-subset",
        "4",
    ]
    assert (
        main(
            [
                "translate",
                "--model",
                str(tmp_path / "t5"),
                "--source",
                str(mmeb),
                "--output-dir",
                str(tmp_path / "tiny_tr"),
                "--max-new-tokens",
                "6",
                *common,
            ]
        )
        == 0
    )
    journalled = [
        json.loads(line)
        for path in (tmp_path / "tiny_tr").rglob("part-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert len(journalled) == 8 and {record["lang"] for record in journalled} == {"sw"}

    # 3. the corpus built from a translation that splits on the file's markers
    translate_mmeb_train(
        SwahiliStandIn(),
        mmeb,
        tmp_path / "tr",
        ["sw"],
        SUBSETS.split(","),
        4,
        revision=None,
        registry=registry,
        languages_file=languages_file,
    )
    capsys.readouterr()
    assert (
        main(
            [
                "build",
                "parallel",
                "--mmeb-train",
                str(mmeb),
                "--translations",
                str(tmp_path / "tr"),
                "--images",
                str(mmeb),
                "--output-dir",
                str(tmp_path / "parallel"),
                *common,
            ]
        )
        == 0
    )
    corpus = json.loads((tmp_path / "parallel" / "build_report.json").read_text())
    assert corpus["rows_out"] > 0 and any(key.startswith("sw/") for key in corpus["split_rows"])

    # 4. MMMEB with a Swahili split: a file named by the release pattern
    release = tmp_path / "release"
    write_mmmeb(release, rows_per_file=3, num_candidates=3)
    shutil.copy(release / "xtd_en_1000_formatted_t2i.jsonl", release / "xtd_sw_1000_formatted_t2i.jsonl")
    assert main(["build", "mmmeb", "--source", str(release), "--output-dir", str(tmp_path / "mmmeb")]) == 0
    assert json.loads((tmp_path / "mmmeb" / "build_report.json").read_text())["split_rows"]["xtd_t2i/sw"] == 3

    # 5. eval: the language file gives a model without Swahili instructions its prompts ...
    model_dir = save_tiny_model("qwen2_vl", tmp_path / "model")
    evaluate = [
        "eval",
        "--model",
        str(model_dir),
        "--data",
        str(tmp_path / "mmmeb"),
        "--tasks",
        "xtd_t2i",
        "--languages",
        "en",
        "sw",
        "--styles",
        "plain",
        "--no-cache",
        "--save-prompts",
    ]
    assert main([*evaluate, "--output-dir", str(tmp_path / "with_file"), "--languages-file", str(languages_file)]) == 0
    prompts = (tmp_path / "with_file" / "prompts.jsonl").read_text(encoding="utf-8")
    assert "Nipatie picha ya kila siku" in prompts and entry.instructions["t2i"]["candidate"].split("\n")[1] in prompts
    # ... and `instructions apply` writes them into the model's config, which eval then uses alone
    assert main(["instructions", "apply", "--model", str(model_dir), "--languages-file", str(languages_file)]) == 0
    config = json.loads((model_dir / "config.json").read_text())
    assert config["instructions"]["t2i"]["candidate"]["sw"] == entry.instructions["t2i"]["candidate"]
    assert config["instructions"]["t2i"]["query"]["it"] == load_languages()["it"].instructions["t2i"]["query"]  # kept
    out = tmp_path / "results"
    assert main([*evaluate, "--output-dir", str(out)]) == 0
    document = json.loads((out / "results.json").read_text())
    scored = {(r["language"], r["num_queries"]) for r in document["models"][0]["scores"]}
    assert scored == {("en", 3), ("sw", 3)}
    with_file = json.loads((tmp_path / "with_file" / "results.json").read_text())
    assert [r["precision@1"] for r in document["models"][0]["scores"]] == [
        r["precision@1"] for r in with_file["models"][0]["scores"]
    ]  # the same prompts, the same scores
    assert (out / "prompts.jsonl").read_text(encoding="utf-8") == prompts

    # 6. the card names Swahili among the evaluated languages and shows its instructions
    card = render_model_card(
        model_dir, out / "results.json", mmmeb_dataset_id="you/mmmeb", languages_file=languages_file
    )
    assert "sw" in card.data.language
    body = str(card)
    assert "**Languages evaluated (MMMEB):** English (en), Swahili (sw)" in body
    assert "Nipatie picha ya kila siku" in body
