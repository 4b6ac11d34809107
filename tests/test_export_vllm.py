"""`xvlm2vec export vllm`: the backbone's native layout, pooling declared, and an exact round trip back."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import numpy as np
import pytest
from conftest import BACKBONES

from modeling_xvlm2vec import XVLM2VecModel
from xvlm2vec.cli import main
from xvlm2vec.convert import ConvertConfig, convert
from xvlm2vec.export_vllm import export_vllm

#: Architectures vLLM registers (vllm/model_executor/models/registry.py): under _EMBEDDING_MODELS (pooling
#: as they are) and, for Qwen2.5-VL and Qwen3-VL, under _MULTIMODAL_MODELS (pooling with --convert embed).
VLLM_EMBEDDING_MODELS = {"LlavaNextForConditionalGeneration", "Phi3VForCausalLM", "Qwen2VLForConditionalGeneration"}
VLLM_MULTIMODAL_MODELS = {"Qwen2_5_VLForConditionalGeneration", "Qwen3VLForConditionalGeneration"}
EXPECTED = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "phi3_v": "Phi3VForCausalLM",
}


def reimport(folder: Path, backbone: str, tmp_path: Path) -> XVLM2VecModel:
    """The exported folder back as an xVLM2Vec model: `convert phi3v` for Phi-3.5-V, else `from_backbone`."""
    if backbone == "phi3_v":
        convert(ConvertConfig(input=folder, output_dir=tmp_path / "back"))
        return XVLM2VecModel.from_pretrained(tmp_path / "back")
    return XVLM2VecModel.from_backbone(str(folder))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_export_round_trip_is_exact(backbone, tiny_models, images, tmp_path, capsys) -> None:
    model, _ = tiny_models(backbone)
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "vllm"
    assert main(["export", "vllm", str(tmp_path / "model"), "--output-dir", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)

    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [EXPECTED[backbone]] == [printed["architecture"]]
    assert config["architectures"][0] in VLLM_EMBEDDING_MODELS | VLLM_MULTIMODAL_MODELS
    assert ("--convert embed" in printed["serve_command"]) == (config["architectures"][0] in VLLM_MULTIMODAL_MODELS)
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((out / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_lasttoken"] is True and pooling["pooling_mode_mean_tokens"] is False
    assert pooling["word_embedding_dimension"] == model.config.hidden_size

    back = reimport(out, backbone, tmp_path)
    texts = ["<|image_1|>\nRepresent the given image", "Find me an everyday image: a red circle", "un cerchio rosso"]
    rows = [images[0], None, images[1]]
    # 1e-6 (fp32): the same weights and processor, moved between layouts without arithmetic
    np.testing.assert_allclose(back.encode(texts, images=rows), model.encode(texts, images=rows), atol=1e-6)


def test_chat_template_writes_the_raw_prompt(tiny_models, tmp_path) -> None:
    """vLLM renders `messages` with the exported template: image parts become the backbone's tag, text stays
    verbatim.
    """
    model, _ = tiny_models("llava_next")
    model.save_pretrained(tmp_path / "model")
    export_vllm(tmp_path / "model", tmp_path / "vllm")
    template = jinja2.Template((tmp_path / "vllm" / "chat_template.jinja").read_text())
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "\nRepresent the given image"}]}
    ]
    assert template.render(messages=messages) == "<image>\nRepresent the given image"
    assert template.render(messages=[{"role": "user", "content": "a red circle"}]) == "a red circle"


def test_export_refuses_a_folder_that_is_not_xvlm2vec(tmp_path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type is 'bert', expected 'xvlm2vec'"):
        export_vllm(tmp_path / "other", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_sentence_transformers_upgrades_an_older_folder(tiny_models, images, tmp_path, capsys) -> None:
    """A folder saved before sentence-transformers support gets its files by `xvlm2vec export
    sentence-transformers`.
    """
    model, _ = tiny_models("llava_next")
    old = tmp_path / "old"
    model.save_pretrained(old)
    for name in ("modules.json", "config_sentence_transformers.json"):
        (old / name).unlink()
    out = tmp_path / "st"
    assert main(["export", "sentence-transformers", str(old), "--output-dir", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["output_dir"] == str(out)
    assert json.loads((out / "modules.json").read_text())[0]["type"] == "sentence_xvlm2vec.XVLM2VecSentenceModule"
    assert "t2i_query_it" in json.loads((out / "config_sentence_transformers.json").read_text())["prompts"]
    rows = ["<|image_1|>\nRepresent the given image", "un cerchio rosso"]
    np.testing.assert_allclose(
        XVLM2VecModel.from_pretrained(out).encode(rows, images=[images[0], None]),
        model.encode(rows, images=[images[0], None]),
        atol=1e-6,
    )


@pytest.mark.parametrize("convention", ["gme", "vlm2vec_v2"])
def test_export_refuses_a_convention_vllm_would_not_reproduce(convention, tmp_path) -> None:
    from xvlm2vec.testing.tiny_model import save_tiny_model

    folder = save_tiny_model("qwen2_vl", tmp_path / "model", convention=convention)
    with pytest.raises(ValueError, match=f"convention '{convention}' numbers image tokens like text"):
        export_vllm(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()
