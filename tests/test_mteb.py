"""MTEB: the xVLM2Vec encoder wrapper and MMMEB as MTEB tasks give the same precision@1 as `xvlm2vec eval`."""

from __future__ import annotations

import pytest

mteb = pytest.importorskip("mteb")

from mteb.types import PromptType  # noqa: E402

from modeling_xvlm2vec.instructions import INSTRUCTIONS  # noqa: E402
from xvlm2vec.evaluation.runner import RunConfig, Runner  # noqa: E402
from xvlm2vec.integrations.mteb import XVLM2VecEncoder, mmmeb_tasks  # noqa: E402

#: One config per MTEB category MMMEB uses: t2i, i2t (classification), it2t (vqa), it2i (visual grounding).
CONFIGS = ["xtd_t2i", "imagenet-1k-val_c", "maxm_v1_vqa", "flickr30k_entities_vg"]


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen3_vl"])
def encoder(request, tiny_models, tmp_path_factory):
    model, _ = tiny_models(request.param)
    folder = tmp_path_factory.mktemp("mteb_model")
    model.save_pretrained(folder)
    return XVLM2VecEncoder(str(folder), style="punct")


def test_mteb_precision_at_1_equals_xvlm2vec_eval(encoder, built_mmmeb) -> None:
    tasks = mmmeb_tasks(str(built_mmmeb), CONFIGS)
    assert [task.metadata.main_score for task in tasks] == ["precision_at_1"] * len(CONFIGS)
    assert tasks[0].metadata.eval_langs["it"] == ["ita-Latn"]
    result = mteb.evaluate(encoder, tasks, cache=None, show_progress_bar=False)
    ours = {
        (task.task_name.removeprefix("MMMEB_"), score["hf_subset"]): score["main_score"]
        for task in result.task_results
        for score in task.scores["test"]
    }
    records = Runner(RunConfig(tasks=CONFIGS, styles=["punct"])).evaluate(encoder.embedder, str(built_mmmeb))
    reference = {(r["config"], r["language"]): r["precision@1"] for r in records}
    assert ours == reference  # exact: the same prompts, embeddings and candidate lists
    assert len(set(reference.values())) > 1, "the fixture must give different P@1 across splits to discriminate"


def test_wrapper_uses_the_protocol_instructions(encoder) -> None:
    query = encoder.prompts(["un cane"], "MMMEB_xtd_t2i", PromptType.query, "it")
    assert query == [INSTRUCTIONS["t2i"]["query"]["it"].replace("{text}", "un cane.")]  # punct style
    candidate = encoder.prompts([None], "MMMEB_xtd_t2i", PromptType.document, "de")
    # the image candidate's template gets the style's "." and the backbone's own image tag, as in `xvlm2vec eval`
    tag = encoder.embedder.image_tag
    assert candidate == [INSTRUCTIONS["t2i"]["candidate"]["de"].replace("<|image_1|>", tag) + "."]
    assert encoder.prompts(["as is"], "SomeOtherTask", PromptType.query, "en") == ["as is"]


def test_unknown_config_is_refused(built_mmmeb) -> None:
    with pytest.raises(ValueError, match=r"no MMMEB config \['xtd_nope'\]"):
        mmmeb_tasks(str(built_mmmeb), ["xtd_nope"])


@pytest.fixture(scope="module")
def published_folder(tiny_models, tmp_path_factory):
    """A tiny model folder with the model card `xvlm2vec publish` renders (license, base model, datasets)."""
    from hub_cards.model_card import render_model_card

    model, _ = tiny_models("qwen2_vl")
    folder = tmp_path_factory.mktemp("mteb_card") / "tiny-xvlm2vec"
    model.save_pretrained(folder)
    card = render_model_card(folder, base_model=BASE, datasets=["org/xvlm2vec-parallel"], license="apache-2.0")
    card.save(folder / "README.md")
    return model, folder


#: A base model MTEB lists (with its MMEB-train training tasks); nothing is downloaded.
BASE = "TIGER-Lab/VLM2Vec-Full"


def test_model_meta_is_filled_from_the_folder(published_folder) -> None:
    import datetime

    from xvlm2vec.fingerprint import weights_fingerprint
    from xvlm2vec.integrations.mteb_meta import MMEB_TRAIN_TASKS

    model, folder = published_folder
    meta = XVLM2VecEncoder(str(folder), repo_id="org/tiny-xvlm2vec").mteb_model_meta
    assert meta.name == "org/tiny-xvlm2vec" and meta.reference == "https://huggingface.co/org/tiny-xvlm2vec"
    assert meta.languages == ["eng-Latn", "deu-Latn", "spa-Latn", "fra-Latn", "ita-Latn"]  # the instruction table
    assert meta.revision == weights_fingerprint(model)[:40]
    mtime = (folder / "model.safetensors").stat().st_mtime
    assert meta.release_date == datetime.datetime.fromtimestamp(mtime, tz=datetime.timezone.utc).date().isoformat()
    assert meta.license == "apache-2.0" and meta.adapted_from == BASE
    assert meta.n_parameters == sum(p.numel() for p in model.parameters())
    assert meta.n_embedding_parameters == model.get_input_embeddings().weight.numel()
    assert meta.max_tokens == model.config.backbone_config.text_config.max_position_embeddings
    assert meta.embed_dim == model.config.hidden_size
    # the VLM2Vec base was trained on MMEB-train: the MTEB tasks built from its datasets (MTEB's own entry is empty)
    assert meta.training_datasets == set(MMEB_TRAIN_TASKS) | set(mteb.get_model_meta(BASE).training_datasets)
    assert meta.public_training_code == "https://github.com/swapUniba/xVLM2Vec"
    assert meta.public_training_data == "https://huggingface.co/datasets/org/xvlm2vec-parallel"
    assert meta.similarity_fn_name == "cosine" and meta.use_instructions and meta.open_weights
    local = XVLM2VecEncoder(str(folder)).mteb_model_meta
    assert local.name == "local/tiny-xvlm2vec" and local.reference == "https://arxiv.org/abs/2503.09313"
    assert local.revision == meta.revision


def test_mmeb_train_tasks_are_mteb_tasks() -> None:
    from xvlm2vec.integrations.mteb_meta import MMEB_TRAIN_TASKS

    assert sorted(task.metadata.name for task in mteb.get_tasks(tasks=sorted(MMEB_TRAIN_TASKS))) == sorted(
        MMEB_TRAIN_TASKS
    )


def test_result_cache_table_is_complete(published_folder, built_mmmeb, tmp_path) -> None:
    """mteb's own ResultCache reads back every score mteb.evaluate wrote, as a non-empty table."""
    from mteb.cache import ResultCache

    _, folder = published_folder
    encoder = XVLM2VecEncoder(str(folder), style="plain")
    tasks = mmmeb_tasks(str(built_mmmeb), ["xtd_t2i", "xm_i2t"])
    result = mteb.evaluate(encoder, tasks, cache=ResultCache(tmp_path), show_progress_bar=False)
    written = {
        (task.task_name, score["hf_subset"]): score["main_score"]
        for task in result.task_results
        for score in task.scores["test"]
    }
    table = ResultCache(tmp_path).load_results().to_dataframe(aggregation_level="subset", format="long")
    read = {(row.task_name, row.subset): row.score for row in table.itertuples()}
    assert read == written and len(read) == sum(len(task.hf_subsets) for task in tasks)
    assert set(table["model_name"]) == {"local/tiny-xvlm2vec"}
    wide = ResultCache(tmp_path).load_results().to_dataframe()
    assert not wide.empty and sorted(wide["task_name"]) == ["MMMEB_xm_i2t", "MMMEB_xtd_t2i"]
