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
