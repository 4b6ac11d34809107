"""Languages as data: the shipped registry, user language files, markers translated once and cached,
cleaning rules for scripts without a Latin full stop and right-to-left scripts, and
``xvlm2vec instructions translate`` with its placeholder check (a tiny random T5 included)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from dataset_builders.mmeb_train import clean_pair, pack_request, parse_response, translated_fields
from dataset_builders.translate import MarkerError, ensure_markers, translate_subset
from modeling_xvlm2vec.instructions import get_instruction
from modeling_xvlm2vec.languages import Language, load_languages, read_language_file, write_language_file
from xvlm2vec.cli import main as cli_main
from xvlm2vec.instructions import translate_instructions
from xvlm2vec.testing.fixtures import mmeb_train_rows
from xvlm2vec_common.safe_inputs import RowError

TAG = "<|image_1|>\n"
JA = Language("ja", "Japanese", ("質問", "回答"), {".": "。", "?": "？", "!": "！"})
AR = Language("ar", "Arabic", ("سؤال", "إجابة"), {"?": "؟"})
TH = Language("th", "Thai", None, {".": ""})


def _write(path: Path, languages: dict) -> Path:
    path.write_text(json.dumps({"format": "xvlm2vec-languages/1", "languages": languages}, ensure_ascii=False))
    return path


def test_paper_languages_are_entries_of_the_shipped_file() -> None:
    registry = load_languages()
    assert registry.codes == ("en", "it", "es", "fr", "de")
    assert registry["de"].markers == ("Frage", "Antwort") and registry["es"].name == "Spanish"
    assert (
        get_instruction("t2i", "query", "it")
        == "Trovami un'immagine di tutti i giorni che corrisponda alla didascalia data: {text}"
    )
    assert sorted(registry.instruction_table()["vg"]["query"]) == ["en", "fr"]  # vg is released in en and fr only


def test_a_language_file_adds_a_language_and_overrides_field_by_field(tmp_path: Path) -> None:
    english = load_languages()["en"].instructions
    pt = {
        "name": "Portuguese",
        "markers": {"question": "Pergunta", "answer": "Resposta"},
        "instructions": {
            "t2i": {
                "query": "Encontre uma imagem que corresponda à legenda: {text}",
                "candidate": TAG + "Represente a imagem dada",
            }
        },
    }
    path = _write(
        tmp_path / "langs.json", {"pt": pt, "it": {"markers": {"question": "Quesito", "answer": "Risposta"}}}
    )
    registry = load_languages(path)
    assert registry.codes == ("en", "it", "es", "fr", "de", "pt")
    assert registry["pt"].markers == ("Pergunta", "Resposta")
    assert registry["it"].markers == ("Quesito", "Risposta")  # overridden ...
    assert registry["it"].instructions["c"] == load_languages()["it"].instructions["c"]  # ... the rest kept
    table = registry.instruction_table()
    assert table["t2i"]["candidate"]["pt"] == TAG + "Represente a imagem dada" and "pt" not in table["i2t"]["query"]
    assert english == load_languages()["en"].instructions  # the shipped registry is untouched
    # written back and read again: the same entry
    write_language_file(tmp_path / "again.json", [registry["pt"]])
    assert read_language_file(tmp_path / "again.json")["pt"] == registry["pt"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"nmae": "typo"}, "unknown field"),
        ({"instructions": {"t2i": {"query": "Encontre uma imagem"}}}, r"\{text\} appears 0 time"),
        ({"instructions": {"i2t": {"query": "Encontre uma legenda"}}}, "image tag"),
        ({"instructions": {"x2y": {"query": "a"}}}, "unknown task"),
        ({"markers": {"question": "Pergunta", "answer": "Pergunta"}}, "two different"),
    ],
)
def test_malformed_language_files_are_refused_naming_file_and_entry(tmp_path: Path, entry: dict, message: str) -> None:
    path = _write(tmp_path / "bad.json", {"pt": entry})
    with pytest.raises(ValueError, match=message) as caught:
        load_languages(path)
    assert str(path) in str(caught.value) and "pt" in str(caught.value)


def test_language_codes_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a language code"):
        load_languages(_write(tmp_path / "bad.json", {"../etc": {"name": "x"}}))
    assert "pt-BR" in load_languages(_write(tmp_path / "ok.json", {"pt-BR": {"name": "Brazilian Portuguese"}}))


def test_cleaning_rules_japanese() -> None:
    assert clean_pair("A dog.", "犬です。", JA) == "犬です。"  # 。 stands for English's full stop: kept, no '.' added
    assert clean_pair("What is it?", "これは何ですか？", JA) == "これは何ですか？"
    assert clean_pair("A dog.", "犬です", JA) == "犬です。"  # gains the language's own mark
    assert clean_pair("A dog", "犬です。", JA) == "犬です"  # English has none: the full-width mark goes too
    assert clean_pair("A dog.\n", "犬です。", JA) == "犬です。\n"
    # without an entry the script's marks are still recognised (never '。.')
    assert clean_pair("A dog.", "犬です。") == "犬です。"


def test_cleaning_rules_arabic_right_to_left() -> None:
    assert clean_pair("What is this?", "ما هذا؟", AR) == "ما هذا؟"
    assert clean_pair("What is this?", "ما هذا", AR) == "ما هذا؟"  # gains the Arabic question mark, not '?'
    assert clean_pair("What is this?", "ما هذا؟\u200f", AR) == "ما هذا؟"  # a trailing RLM hid the mark
    assert clean_pair("A dog", "كلب.\u200f", AR) == "كلب"
    assert clean_pair(TAG + "Represent the image.", TAG + "مثّل الصورة.", AR) == TAG + "مثّل الصورة."
    with pytest.raises(RowError, match="image tag"):
        clean_pair(TAG + "Represent the image.", "مثّل الصورة.", AR)


def test_cleaning_rules_thai_has_no_final_mark() -> None:
    assert clean_pair("A dog.", "สุนัข", TH) == "สุนัข"  # nothing added
    assert clean_pair("A dog.", "สุนัข.", TH) == "สุนัข"  # a stray full stop removed
    assert clean_pair("Is it a dog?", "ใช่สุนัขไหม?", TH) == "ใช่สุนัขไหม?"  # only '.' is absent in Thai


def test_parse_splits_on_the_entrys_markers_with_a_full_width_colon() -> None:
    fields = ["qry", "pos_text"]
    assert parse_response("質問：これは何ですか？ 回答：犬です。", JA, fields, ["qry"]) == {
        "qry": TAG + "これは何ですか？",
        "pos_text": "犬です。",
    }
    with pytest.raises(RowError) as caught:
        parse_response("これは何ですか？ 犬です。", JA, fields, [])
    assert caught.value.reason == "part_count_mismatch"


class MarkerTranslator:
    """Translates the markers through a dictionary; packed requests swap them and tag the parts."""

    WORDS = {"pt": {"Question:": "Pergunta:", "Answer:": "Resposta:"}}

    def __init__(self) -> None:
        self.marker_calls = 0

    def translate(self, texts: Sequence[str], lang: str) -> list[str]:
        if all(t in self.WORDS[lang] for t in texts):
            self.marker_calls += 1
            return [self.WORDS[lang][t] for t in texts]
        return [t.replace("Question:", "Pergunta: [pt]").replace("Answer:", "Resposta: [pt]") for t in texts]


def test_markers_are_translated_once_and_cached_in_the_language_file(tmp_path: Path) -> None:
    languages_file = tmp_path / "langs.json"
    translator = MarkerTranslator()
    with pytest.raises(MarkerError, match="--languages-file"):
        ensure_markers(translator, load_languages(), ["pt"], None)
    registry = ensure_markers(translator, load_languages(), ["pt", "it"], languages_file)
    assert translator.marker_calls == 1 and registry["pt"].markers == ("Pergunta", "Resposta")
    assert read_language_file(languages_file)["pt"].markers == ("Pergunta", "Resposta")  # cached, reviewable
    again = ensure_markers(translator, load_languages(languages_file), ["pt"], languages_file)
    assert translator.marker_calls == 1 and again["pt"].markers == ("Pergunta", "Resposta")
    rows = mmeb_train_rows("OK-VQA", 4)
    translate_subset(translator, rows, "OK-VQA", registry["pt"], tmp_path / "tr", batch_size=2)
    records = [
        json.loads(line) for line in (tmp_path / "tr" / "OK-VQA" / "pt" / "part-00000.jsonl").read_text().splitlines()
    ]
    assert [set(r["fields"]) for r in records] == [set(translated_fields("OK-VQA"))] * 4
    assert all(r["fields"]["pos_text"].removeprefix(TAG).startswith("[pt] ") for r in records)


def test_markers_that_cannot_split_a_request_are_refused(tmp_path: Path) -> None:
    class Same:
        def translate(self, texts: Sequence[str], lang: str) -> list[str]:
            return ["Palavra:" for _ in texts]

    with pytest.raises(MarkerError, match="cannot split"):
        ensure_markers(Same(), load_languages(), ["pt"], tmp_path / "langs.json")
    assert not (tmp_path / "langs.json").exists()


class PrefixTranslator:
    """Keeps every placeholder (prefixes the language); ``drop`` deletes ``{text}`` from its outputs."""

    def __init__(self, drop: bool = False) -> None:
        self.drop = drop

    def translate(self, texts: Sequence[str], lang: str) -> list[str]:
        assert not any(t.startswith("<|image_1|>") for t in texts)  # the tag line never reaches the model
        return [f"[{lang}] " + (t.replace("{text}", "") if self.drop else t) for t in texts]


def test_translated_instructions_keep_placeholders_or_are_refused() -> None:
    english = load_languages()["en"]
    accepted, refused = translate_instructions(PrefixTranslator(), english, "pt")
    assert not refused
    assert accepted["t2i"]["query"] == "[pt] Find me an everyday image that matches the given caption: {text}"
    assert accepted["i2t"]["query"] == TAG + "[pt] Find an image caption describing the given everyday image"
    assert {(t, s) for t, sides in accepted.items() for s in sides} == {
        (t, s) for t, sides in english.instructions.items() for s in sides
    }
    accepted, refused = translate_instructions(PrefixTranslator(drop=True), english, "pt")
    assert sorted((r.task, r.side) for r in refused) == [("t2i", "query"), ("vg", "query"), ("vqa", "query")]
    assert all("{text} appears 0 time(s)" in str(r) for r in refused)
    assert "query" not in accepted["t2i"] and accepted["t2i"]["candidate"] == TAG + "[pt] Represent the given image"


def test_instructions_translate_with_a_tiny_t5_refuses_lost_placeholders(tmp_path: Path, capsys) -> None:
    from test_datasets_translate import _tiny_t5

    _tiny_t5(tmp_path / "t5")
    output = tmp_path / "pt.json"
    argv = [
        "instructions",
        "translate",
        "--model",
        str(tmp_path / "t5"),
        "--languages",
        "pt",
        "--output",
        str(output),
        "--max-new-tokens",
        "6",
    ]
    assert cli_main(argv) == 2
    assert not output.exists()  # nothing written
    captured = capsys.readouterr()
    assert "\nerror: 3 translated instruction(s) refused (lost a placeholder" in "\n" + captured.err
    refused = [line for line in captured.out.splitlines() if line.startswith("refused: pt t2i/query")]
    assert refused and "{text} appears 0 time(s)" in refused[0]  # the random model cannot spell {text}
    assert cli_main([*argv, "--partial"]) == 0
    entry = read_language_file(output)["pt"]
    assert "query" not in entry.instructions.get("t2i", {})  # refused ones are left for a person to write
    assert entry.instructions["c"]["query"].startswith(TAG)  # the image tag line was restored
    load_languages(output)  # what was written passes the registry's checks
    # a person writes the refused query by hand; a rerun keeps it (and the rest of the entry)
    by_hand = "Encontre uma imagem do dia a dia que corresponda à legenda dada: {text}"
    document = json.loads(output.read_text(encoding="utf-8"))
    document["languages"]["pt"]["instructions"].setdefault("t2i", {})["query"] = by_hand
    document["languages"]["pt"]["name"] = "Portuguese"
    output.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert cli_main([*argv, "--partial"]) == 0
    again = read_language_file(output)["pt"]
    assert again.instructions["t2i"]["query"] == by_hand and again.name == "Portuguese"
    assert again.instructions["c"] == entry.instructions["c"]


def test_pack_request_uses_the_english_entry() -> None:
    request, tagged = pack_request({"qry": TAG + "What is it", "pos_text": "A dog"}, ["qry", "pos_text"])
    assert request == "Question: What is it. Answer: A dog." and tagged == ["qry"]


def test_languages_file_arguments_are_checked_before_anything_runs(tmp_path: Path, capsys) -> None:
    bad = _write(tmp_path / "bad.json", {"pt": {"instructions": {"t2i": {"query": "sem espaço"}}}})
    for argv in (
        ["instructions", "apply", "--model", str(tmp_path), "--languages-file", str(bad)],
        ["instructions", "apply", "--model", str(tmp_path), "--languages-file", str(tmp_path / "missing.json")],
        [
            "translate",
            "--model",
            "m",
            "--source",
            str(tmp_path),
            "--output-dir",
            str(tmp_path / "o"),
            "--languages",
            "pt",
            "--languages-file",
            str(tmp_path / "no" / "such" / "folder.json"),
        ],
    ):
        with pytest.raises(SystemExit) as caught:
            cli_main(argv)
        assert caught.value.code == 2 and "--languages-file" in capsys.readouterr().err


def test_baselines_take_a_new_languages_class_template_from_its_file(tmp_path: Path) -> None:
    from xvlm2vec.evaluation.data import Candidate
    from xvlm2vec.evaluation.prompts import candidate_input

    class Baseline:
        image_tag, uses_instructions, instructions, languages = "<image>", False, {}, None

    baseline = Baseline()
    with pytest.raises(ValueError, match="'sw' has no baseline_class_template"):
        candidate_input(baseline, "c", "sw", Candidate("simba", None), None)
    baseline.languages = load_languages(
        _write(tmp_path / "sw.json", {"sw": {"baseline_class_template": "picha ya {text}"}})
    )
    assert candidate_input(baseline, "c", "sw", Candidate("simba", None), None) == ("picha ya simba", None)
    assert candidate_input(baseline, "c", "de", Candidate("Löwe", None), None) == (
        "Bild von Löwe",
        None,
    )  # shipped kept
