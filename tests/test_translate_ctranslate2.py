"""``xvlm2vec translate --engine ctranslate2``: the real CTranslate2 engine (installed from the registry, extra
``ctranslate2``) against transformers' ``generate`` on tiny random T5 models: token-identical greedy outputs,
identical journals, a run resumed with the other engine, the conversion cache, and the refusals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_datasets_translate import LANG, SUBSET, _records

from dataset_builders.mmeb_train import pack_request, translated_fields
from dataset_builders.translate import EngineOptions, Seq2SeqTranslator, load_translator, translate_subset
from xvlm2vec.testing.fixtures import mmeb_train_rows
from xvlm2vec.testing.tiny_mt import tiny_t5 as _tiny_t5
from xvlm2vec_common.cli_errors import UsageError


def _engines(folder: Path, cache: Path, max_new_tokens: int) -> tuple[Seq2SeqTranslator, Seq2SeqTranslator]:
    reference = load_translator(str(folder), max_new_tokens=max_new_tokens)
    ct2 = load_translator(
        str(folder), max_new_tokens=max_new_tokens, options=EngineOptions("ctranslate2", "default", cache)
    )
    assert isinstance(reference, Seq2SeqTranslator) and isinstance(ct2, Seq2SeqTranslator)
    return reference, ct2


def _requests(n: int) -> list[str]:
    return [pack_request(row, translated_fields(SUBSET))[0] for row in mmeb_train_rows(SUBSET, n)]


@pytest.mark.parametrize("model", ["varied", "forced_eos", "no_eos"])
def test_greedy_outputs_are_token_identical(tmp_path: Path, model: str) -> None:
    folder = tmp_path / "t5"
    _tiny_t5(folder, end=model)
    reference, ct2 = _engines(folder, tmp_path / "cache", max_new_tokens=24)
    texts = _requests(40)
    expected, got = reference.generate(texts, LANG), ct2.generate(texts, LANG)
    assert [g.ids for g in got] == [g.ids for g in expected]  # exact token ids, every row
    assert [g.truncated for g in got] == [g.truncated for g in expected]
    assert ct2.translate(texts, LANG) == reference.translate(texts, LANG)
    cut = sum(g.truncated for g in expected)
    if model == "varied":  # both endings occur, and outputs are not one repeated word
        assert 0 < cut < len(texts) and any(len(set(g.ids)) > 2 for g in expected)
    else:  # forced EOS at the limit: never cut, 23 words; EOS suppressed: always cut, 24 words
        assert cut == (len(texts) if model == "no_eos" else 0)
        assert {len(g.ids) for g in expected} == {24 if model == "no_eos" else 23}


@pytest.mark.parametrize(("setting", "value"), [("repetition_penalty", 1.3), ("no_repeat_ngram_size", 2)])
def test_mapped_generation_settings_stay_token_identical(tmp_path: Path, setting: str, value: float) -> None:
    _tiny_t5(tmp_path / "t5", end="varied")
    path = tmp_path / "t5" / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), setting: value}))
    reference, ct2 = _engines(tmp_path / "t5", tmp_path / "cache", max_new_tokens=24)
    texts = _requests(40)
    expected = reference.generate(texts, LANG)
    assert ct2.generate(texts, LANG) == expected
    plain = load_translator(str(_plain(tmp_path)), max_new_tokens=24).generate(texts, LANG)
    assert sum(a != b for a, b in zip(plain, expected)) > 0  # the setting really changes the outputs


def _plain(tmp_path: Path) -> Path:
    _tiny_t5(tmp_path / "plain", end="varied")
    return tmp_path / "plain"


class _KilledAfter:
    """Wraps a translator; the ``calls``-th call raises KeyboardInterrupt (a kill: not journalled, not caught)."""

    def __init__(self, translator, calls: int) -> None:
        self.translator, self.calls = translator, calls

    def translate(self, texts: Sequence[str], lang: str):
        self.calls -= 1
        if self.calls == 0:
            raise KeyboardInterrupt
        return self.translator.translate(texts, lang)


@pytest.mark.parametrize("first", ["transformers", "ctranslate2"])
def test_a_run_resumes_with_the_other_engine(tmp_path: Path, first: str) -> None:
    _tiny_t5(tmp_path / "t5", end="varied")
    reference, ct2 = _engines(tmp_path / "t5", tmp_path / "cache", max_new_tokens=12)
    engines = {"transformers": reference, "ctranslate2": ct2}
    rows = mmeb_train_rows(SUBSET, 10)
    translate_subset(reference, rows, SUBSET, LANG, tmp_path / "clean", batch_size=3)
    out = tmp_path / "switched"
    with pytest.raises(KeyboardInterrupt):
        translate_subset(_KilledAfter(engines[first], 3), rows, SUBSET, LANG, out, batch_size=3, order="length")
    journal = next((out / SUBSET / LANG).glob("part-*.jsonl"))
    assert journal.read_text(encoding="utf-8").count("\n") == 6  # two batches landed before the kill
    with open(journal, "ab") as handle:  # and the kill cut a third write in the middle
        handle.write(b'{"id": 3, "subset": "OK-VQA", "la')
    second = "ctranslate2" if first == "transformers" else "transformers"
    assert translate_subset(engines[second], rows, SUBSET, LANG, out, batch_size=4, order="length") == 4
    records = _records(out)
    assert records == _records(tmp_path / "clean")
    assert {r.get("rejected") for r in records} <= {"truncated", "part_count_mismatch", None}


def test_conversion_is_cached_by_the_model_files(tmp_path: Path) -> None:
    import torch
    from transformers import T5ForConditionalGeneration

    folder, cache = tmp_path / "t5", tmp_path / "cache"
    _tiny_t5(folder, end="varied")
    options = EngineOptions("ctranslate2", "default", cache)
    load_translator(str(folder), max_new_tokens=8, options=options)
    (entry,) = cache.iterdir()
    stamp = (entry / "model.bin").stat().st_mtime_ns
    load_translator(str(folder), max_new_tokens=8, options=options)
    assert list(cache.iterdir()) == [entry] and (entry / "model.bin").stat().st_mtime_ns == stamp  # reused
    model = T5ForConditionalGeneration.from_pretrained(folder)
    with torch.no_grad():
        model.lm_head.weight[5] += 1.0  # one weight changes: a new conversion, the old one is not reused
    model.save_pretrained(folder)
    translator = load_translator(str(folder), max_new_tokens=8, options=options)
    assert len(list(cache.iterdir())) == 2
    reference = load_translator(str(folder), max_new_tokens=8)
    texts = _requests(12)
    assert translator.generate(texts, LANG) == reference.generate(texts, LANG)


def test_int8_compute_type_runs_and_transformers_refuses_it(tmp_path: Path) -> None:
    _tiny_t5(tmp_path / "t5", end="varied")
    options = EngineOptions("ctranslate2", "int8", tmp_path / "cache")
    outputs = load_translator(str(tmp_path / "t5"), max_new_tokens=8, options=options).translate(_requests(4), LANG)
    assert len(outputs) == 4 and all(isinstance(text, str) for text, _ in outputs)
    with pytest.raises(UsageError, match="--compute-type int8"):
        load_translator(str(tmp_path / "t5"), options=EngineOptions("transformers", "int8"))


def test_generation_settings_it_cannot_reproduce_are_refused(tmp_path: Path) -> None:
    _tiny_t5(tmp_path / "t5", end="varied")
    path = tmp_path / "t5" / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "num_beams": 2}))
    with pytest.raises(UsageError, match="num_beams=2"):
        load_translator(str(tmp_path / "t5"), options=EngineOptions("ctranslate2", "default", tmp_path / "c"))


def test_cli_engine_options(tmp_path: Path) -> None:
    from xvlm2vec.cli import build_parser

    base = ["translate", "--model", "m", "--source", "s", "--output-dir", str(tmp_path), "--languages", "it"]
    args = build_parser("translate").parse_args(base)
    assert (args.engine, args.compute_type, args.batch_order) == ("transformers", "default", None)
    args = build_parser("translate").parse_args([*base, "--engine", "ctranslate2", "--compute-type", "int8"])
    assert (args.engine, args.compute_type) == ("ctranslate2", "int8")
