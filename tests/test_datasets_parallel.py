"""Parallel corpus: the released packing/marker/cleaning rules (one test per rule), the seed-42
shuffle, reproduction from MMEB-train + translation journals, and the Hub-layout build."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from datasets import load_dataset

from dataset_builders.mmeb_train import (
    IMAGE_TAG,
    PAIR_FIELDS,
    clean_pair,
    journal_path,
    pack_request,
    parse_response,
    reproduce_parallel_jsonl,
    translated_fields,
)
from dataset_builders.parallel import FEATURES, build_parallel, dev_size, validate_line
from dataset_builders.translate import append_lines
from xvlm2vec.testing.fixtures import write_mmeb_train, write_parallel
from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.safe_inputs import RowError

# --- packing and marker parsing ----------------------------------------------------------------


def test_pack_removes_tags_and_newlines_and_ends_parts_with_punctuation() -> None:
    row = {"qry": IMAGE_TAG + "What is\nshown", "pos_text": "A dog", "neg_text": "A cat!"}
    request, tagged = pack_request(row, ["qry", "pos_text", "neg_text"])
    assert request == "Question: What isshown. Answer: A dog. Answer: A cat!"
    assert tagged == ["qry"]


def test_negative_text_is_packed_only_for_subsets_that_translate_it() -> None:
    assert translated_fields("A-OKVQA") == ["qry", "pos_text", "neg_text"]
    assert translated_fields("MSCOCO_t2i") == ["qry", "pos_text"]


def test_parse_splits_on_target_markers_and_restores_tags() -> None:
    fields = ["qry", "pos_text", "neg_text"]
    out = parse_response("Frage: Was ist das? Antwort: Ein Hund. Antwort: Eine Katze.", "de", fields, ["qry"])
    assert out == {"qry": IMAGE_TAG + "Was ist das?", "pos_text": "Ein Hund.", "neg_text": "Eine Katze."}
    fr = parse_response("Question: Qu'est-ce? Réponse: Un chien.", "fr", ["qry", "pos_text"], [])
    assert fr == {"qry": "Qu'est-ce?", "pos_text": "Un chien."}


def test_parse_rejects_a_part_count_mismatch() -> None:
    with pytest.raises(RowError) as err:
        parse_response("Domanda: Cosa? Risposta: Un cane.", "it", ["qry", "pos_text", "neg_text"], [])
    assert err.value.reason == "part_count_mismatch"
    with pytest.raises(RowError):  # English markers left in an Italian output do not count
        parse_response("Question: Cosa? Answer: Un cane.", "it", ["qry", "pos_text"], [])


# --- cleaning rules: one test each -------------------------------------------------------------


def test_rule_empty_side_drops_the_pair() -> None:
    for en, x in (("", "ciao."), ("hello.", "  "), ("\n", "ciao")):
        with pytest.raises(RowError) as err:
            clean_pair(en, x)
        assert err.value.reason == "empty_text"


def test_rule_trailing_punctuation_matches_english() -> None:
    assert clean_pair("A dog", "Un cane.") == "Un cane"  # English has none: removed
    assert clean_pair("A dog.", "Un cane") == "Un cane."  # English has one: added
    assert clean_pair("Is it a dog?", "È un cane.") == "È un cane.?"  # differs: English's appended, as released
    assert clean_pair("A dog.", "Un cane.") == "Un cane."  # already matching: unchanged


def test_rule_trailing_newline_kept_when_english_has_one() -> None:
    assert clean_pair("A dog.\n", "Un cane") == "Un cane.\n"
    assert clean_pair("A dog.", "Un cane.") == "Un cane."


def test_rule_lost_image_tag_drops_the_pair() -> None:
    with pytest.raises(RowError) as err:
        clean_pair(IMAGE_TAG + "Represent the image.", "Rappresenta l'immagine.")
    assert err.value.reason == "lost_image_tag"
    assert clean_pair(IMAGE_TAG + "Represent it.", IMAGE_TAG + "Rappresentala.") == IMAGE_TAG + "Rappresentala."


# --- reproduction from MMEB-train + translation journals ---------------------------------------


def _translate_journal(mmeb: Path, journals: Path, subsets: tuple[str, ...], languages: tuple[str, ...]) -> None:
    """Journals as `xvlm2vec translate` writes them; row 1 is rejected, row 2 loses its image tag."""
    from dataset_builders.mmeb_train import load_subset

    for subset in subsets:
        for lang in languages:
            records = []
            for row_id, row in enumerate(load_subset(mmeb, subset)):
                base = {"id": row_id, "subset": subset, "lang": lang}
                if row_id == 1:
                    records.append({**base, "rejected": "part_count_mismatch", "output": "x"})
                    continue
                fields = {
                    f: f"[{lang}] {row[f]}"
                    if not row[f].startswith(IMAGE_TAG)
                    else IMAGE_TAG + f"[{lang}] " + row[f][len(IMAGE_TAG) :]
                    for f in translated_fields(subset)
                }
                if row_id == 2:
                    fields = {f: v.replace(IMAGE_TAG, "") for f, v in fields.items()}
                records.append({**base, "fields": fields})
            append_lines(journal_path(journals, subset, lang, 0), records)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("repro")
    subsets, languages = ("CIRR", "OK-VQA"), ("it", "de")
    write_mmeb_train(root / "mmeb", rows_per_subset=5, subsets=subsets)
    _translate_journal(root / "mmeb", root / "tr", subsets, languages)
    result = reproduce_parallel_jsonl(
        root / "mmeb", root / "tr", root / "corpus" / "parallel_shuffled.jsonl", languages=languages, subsets=subsets
    )
    return root, subsets, languages, result


def test_reproduction_counts_every_pair_and_shuffles_with_seed_42(reproduced) -> None:
    root, subsets, languages, result = reproduced
    frag = result.fragment
    assert frag.rows_in == len(subsets) * len(languages) * 5 * len(PAIR_FIELDS)
    assert frag.rejected["translation_part_count_mismatch"] == len(subsets) * len(languages) * len(PAIR_FIELDS)
    # row 2 of each subset/lang lost its tag on its image side only (one of the two pair fields)
    assert frag.rejected["lost_image_tag"] == len(subsets) * len(languages)
    assert frag.rows_in == frag.rows_out + sum(frag.rejected.values())
    lines = [json.loads(x) for x in result.path.read_text(encoding="utf-8").splitlines()]
    canonical = sorted(
        lines,
        key=lambda r: (
            subsets.index(r["source_dataset"]),
            languages.index(r["lang"]),
            int(r["id"].split("/")[1]),
            list(PAIR_FIELDS).index(r["id"].split("/")[2]),
        ),
    )
    random.Random(42).shuffle(canonical)
    assert lines == canonical
    first = lines[0]
    assert set(first) == {"id", "text_en", "text_lang", "img_en", "img_lang", "lang", "source_dataset"}
    assert first["text_lang"].replace(IMAGE_TAG, "").startswith(f"[{first['lang']}] ")


def test_build_from_reproduction_has_language_configs_and_balanced_report(reproduced, tmp_path: Path) -> None:
    root, _, languages, result = reproduced
    report = build_parallel(root / "corpus", tmp_path / "out", images=root / "mmeb", upstream=result.fragment)
    assert report.balanced and report.rows_in == result.fragment.rows_in
    assert report.rows_out == result.fragment.rows_out  # every image was readable
    for lang in languages:
        train = load_dataset(str(tmp_path / "out"), lang, split="train", cache_dir=str(tmp_path / "c"))
        dev = load_dataset(str(tmp_path / "out"), lang, split="dev", cache_dir=str(tmp_path / "c"))
        assert train.features == FEATURES and set(train["lang"]) == {lang} and len(dev) >= 1
        assert not set(train["id"]) & set(dev["id"])
    all_dev = load_dataset(str(tmp_path / "out"), "all", split="dev", cache_dir=str(tmp_path / "c"))
    assert sorted(all_dev["id"]) == sorted(
        i
        for lang in languages
        for i in load_dataset(str(tmp_path / "out"), lang, split="dev", cache_dir=str(tmp_path / "c"))["id"]
    )
    with_image = [
        r
        for r in load_dataset(str(tmp_path / "out"), "all", split="train", cache_dir=str(tmp_path / "c"))
        if r["image"] is not None
    ]
    assert with_image and all(IMAGE_TAG in r["text_en"] and IMAGE_TAG in r["text_lang"] for r in with_image)


# --- released format ---------------------------------------------------------------------------


def test_release_format_builds_all_config_and_streams(tmp_path: Path) -> None:
    write_parallel(tmp_path / "src", rows=20)
    report = build_parallel(tmp_path / "src", tmp_path / "out", num_proc=2)
    assert report.passed and report.rows_out == 20
    assert report.split_rows == {"all/train": 20 - dev_size(20, 0.01, 2000), "all/dev": dev_size(20, 0.01, 2000)}
    assert any("carry no language" in note for note in report.notes)
    eager = load_dataset(str(tmp_path / "out"), "all", split="train", cache_dir=str(tmp_path / "c"))
    streamed = list(load_dataset(str(tmp_path / "out"), "all", split="train", streaming=True))
    assert [r["id"] for r in streamed] == eager["id"]
    assert eager.features == FEATURES and set(eager["lang"]) == {"und"}


def test_release_lines_are_validated(tmp_path: Path) -> None:
    good = {"id": 1, "text_en": "a dog.", "text_lang": "un cane.", "img_en": None, "img_lang": None}
    assert validate_line(good)["image"] is None
    cases = {
        "missing_field": {k: v for k, v in good.items() if k != "img_lang"},
        "empty_text": {**good, "text_lang": ""},
        "lost_image_tag": {**good, "text_en": IMAGE_TAG + "a dog.", "img_en": "a.jpg", "img_lang": "a.jpg"},
        "image_mismatch": {**good, "img_en": "a.jpg", "img_lang": "b.jpg"},
        "image_tag_mismatch": {**good, "img_en": "a.jpg", "img_lang": "a.jpg"},
        "unsafe_path": {
            **good,
            "text_en": IMAGE_TAG + "x",
            "text_lang": IMAGE_TAG + "y",
            "img_en": "../a.jpg",
            "img_lang": "../a.jpg",
        },
    }
    for reason, record in cases.items():
        with pytest.raises(RowError) as err:
            validate_line(record)
        assert err.value.reason == reason


def test_dev_size_bounds() -> None:
    assert dev_size(1, 0.01, 2000) == 0
    assert dev_size(2, 0.01, 2000) == 1
    assert dev_size(10_000, 0.01, 2000) == 100
    assert dev_size(1_000_000, 0.01, 2000) == 2000


def test_a_build_with_no_row_out_does_not_pass(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    line = {"id": 0, "text_en": "a dog.", "text_lang": "", "img_en": None, "img_lang": None}
    (tmp_path / "src" / "parallel_shuffled.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    report = build_parallel(tmp_path / "src", tmp_path / "out")
    assert report.balanced and report.rows_out == 0 and report.rejected == {"empty_text": 1}
    assert not report.passed


def test_cli_route_b_builds_and_keeps_the_release_file(reproduced, tmp_path: Path) -> None:
    from dataset_builders.build import run
    from xvlm2vec.cli import build_parser

    root, subsets, languages, result = reproduced
    out = tmp_path / "out"
    args = build_parser("build").parse_args(
        [
            "build",
            "parallel",
            "--mmeb-train",
            str(root / "mmeb"),
            "--translations",
            str(root / "tr"),
            "--images",
            str(root / "mmeb"),
            "--subsets",
            ",".join(subsets),
            "--languages",
            ",".join(languages),
            "--output-dir",
            str(out),
        ]
    )
    assert run(args) == 0
    assert (out / "parallel_shuffled.jsonl").read_text(encoding="utf-8") == result.path.read_text(encoding="utf-8")
    saved = json.loads((out / "build_report.json").read_text(encoding="utf-8"))
    assert saved["rows_in"] == result.fragment.rows_in and saved["passed"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "MMEB-train" in card and "revision `0c3f4b8`" in card  # the pinned revision is recorded in the card
    bad = build_parser("build").parse_args(["build", "parallel", "--output-dir", str(out)])
    with pytest.raises(UsageError, match="either --source"):
        run(bad)


def test_a_dropped_query_pair_drops_the_rows_positive_pair(tmp_path: Path) -> None:
    subset, lang = "CIRR", "it"
    write_mmeb_train(tmp_path / "mmeb", rows_per_subset=6, subsets=(subset,))
    from dataset_builders.mmeb_train import load_subset

    rows = load_subset(tmp_path / "mmeb", subset)
    assert rows[0]["qry"].startswith(IMAGE_TAG) and not rows[2]["qry"].startswith(IMAGE_TAG)
    fields = [{f: f"[it] {row[f]}" for f in translated_fields(subset)} for row in rows]
    fields[0]["qry"] = "[it] la domanda senza immagine"  # image query lost its tag: query dropped
    fields[1]["qry"] = ""  # empty query: dropped
    fields[3]["pos_text"] = ""  # empty positive only: the query stays
    records = [{"id": i, "subset": subset, "lang": lang, "fields": f} for i, f in enumerate(fields)]
    append_lines(journal_path(tmp_path / "tr", subset, lang, 0), records)
    result = reproduce_parallel_jsonl(
        tmp_path / "mmeb", tmp_path / "tr", tmp_path / "p.jsonl", languages=(lang,), subsets=(subset,)
    )
    kept = sorted(json.loads(x)["id"] for x in result.path.read_text(encoding="utf-8").splitlines())
    expected = [f"{subset}/3/qry/it"] + [f"{subset}/{i}/{f}/it" for i in (2, 4, 5) for f in ("qry", "pos_text")]
    assert kept == sorted(expected)
    frag = result.fragment
    assert dict(frag.rejected) == {"lost_image_tag": 1, "empty_text": 2, "query_pair_dropped": 2}
    dropped = {e["where"] for e in frag.examples if e["reason"] == "query_pair_dropped"}
    assert dropped == {f"{subset}/0/pos_text/it", f"{subset}/1/pos_text/it"}
    assert frag.rows_in == frag.rows_out + sum(frag.rejected.values()) == 12


def test_reproduction_defaults_are_the_released_20_subsets_at_the_pinned_revision(monkeypatch, tmp_path: Path) -> None:
    import dataset_builders.mmeb_train as mmeb_train

    seen = {}

    def fake_resolve(source, revision=None, **kwargs):
        seen["revision"] = revision
        return tmp_path / "mmeb"

    read = []
    monkeypatch.setattr(mmeb_train, "resolve_source", fake_resolve)
    monkeypatch.setattr(mmeb_train, "load_subset", lambda source, subset, split, limit: read.append(subset) or [])
    result = reproduce_parallel_jsonl("TIGER-Lab/MMEB-train", tmp_path / "tr", tmp_path / "p.jsonl")
    assert seen["revision"] == "0c3f4b8" and len(read) == 20 and "VisDial" not in read
    assert "`TIGER-Lab/MMEB-train` at revision `0c3f4b8`" in result.card_note()


def test_a_truncated_translation_is_counted_by_reason_in_the_build_report(tmp_path: Path) -> None:
    subset, lang = "CIRR", "it"
    write_mmeb_train(tmp_path / "mmeb", rows_per_subset=3, subsets=(subset,))
    from dataset_builders.mmeb_train import load_subset

    rows = load_subset(tmp_path / "mmeb", subset)
    records = [
        {"id": i, "subset": subset, "lang": lang, "fields": {f: f"[it] {row[f]}" for f in translated_fields(subset)}}
        for i, row in enumerate(rows)
    ]
    records[1] = {
        "id": 1,
        "subset": subset,
        "lang": lang,
        "rejected": "truncated",
        "output": "Domanda: ... Risposta: ...",
    }
    append_lines(journal_path(tmp_path / "tr", subset, lang, 0), records)
    result = reproduce_parallel_jsonl(
        tmp_path / "mmeb",
        tmp_path / "tr",
        tmp_path / "corpus/parallel_shuffled.jsonl",
        languages=(lang,),
        subsets=(subset,),
    )
    assert result.fragment.rejected == {"translation_truncated": 2}  # both pairs of row 1
    report = build_parallel(tmp_path / "corpus", tmp_path / "out", images=tmp_path / "mmeb", upstream=result.fragment)
    saved = json.loads((tmp_path / "out/build_report.json").read_text(encoding="utf-8"))
    assert report.balanced and saved["rejected"]["translation_truncated"] == 2


def test_max_dev_rows_0_keeps_every_row_in_train_in_file_order(reproduced, tmp_path: Path) -> None:
    from dataset_builders.build import run
    from xvlm2vec.cli import build_parser

    root, subsets, languages, result = reproduced
    out = tmp_path / "out"
    args = build_parser("build").parse_args(
        [
            "build",
            "parallel",
            "--source",
            str(root / "corpus"),
            "--images",
            str(root / "mmeb"),
            "--output-dir",
            str(out),
            "--max-dev-rows",
            "0",
        ]
    )
    assert run(args) == 0
    train = load_dataset(str(out), "all", split="train", cache_dir=str(tmp_path / "c"))
    file_order = [json.loads(x)["id"] for x in result.path.read_text(encoding="utf-8").splitlines()]
    assert train["id"] == file_order  # the released run's data order: the shuffled file, every row
    with pytest.raises(ValueError):
        load_dataset(str(out), "all", split="dev", cache_dir=str(tmp_path / "c"))
