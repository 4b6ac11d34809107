"""`xvlm2vec export vllm`: the backbone's native layout, pooling declared, and an exact round trip back."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import numpy as np
import pytest
from conftest import BACKBONES
from safetensors import safe_open

from modeling_xvlm2vec import XVLM2VecModel
from xvlm2vec.cli import main
from xvlm2vec.convert import ConvertConfig, convert
from xvlm2vec.export_vllm import export_vllm, negative_layer_idx

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


def test_llava_next_export_names_the_clip_tower_as_vllm_loads_it(tiny_models, tmp_path) -> None:
    """vLLM's CLIP module has `vision_model.*` under `vision_tower` (the llava-hf names); transformers 5 saves
    `vision_tower.embeddings.*`, which vLLM refuses ("no module or parameter named 'vision_tower.embeddings'").
    """
    model, _ = tiny_models("llava_next")
    model.save_pretrained(tmp_path / "model")
    export_vllm(tmp_path / "model", tmp_path / "vllm")
    with safe_open(tmp_path / "vllm" / "model.safetensors", "pt") as weights:
        names = list(weights.keys())
    tower = [name for name in names if name.startswith("vision_tower.")]
    assert tower and all(name.startswith("vision_tower.vision_model.") for name in tower)
    assert "vision_tower.vision_model.embeddings.patch_embedding.weight" in tower


def test_phi3v_export_config_and_processor_load_with_remote_code(tiny_models, tmp_path, run_isolated) -> None:
    """vLLM reads a Phi-3.5-V export with `AutoConfig`/`AutoProcessor` and `trust_remote_code=True`, in a process
    where this project is not installed: the flat config class comes with the export (`auto_map`), and the
    processor has the original's `img_tokens` and `calc_num_image_tokens_from_image_size`.
    """
    model, _ = tiny_models("phi3_v")
    model.save_pretrained(tmp_path / "model")
    report = export_vllm(tmp_path / "model", tmp_path / "vllm")
    depth = model.config.backbone_config.vision_config.num_hidden_layers
    code = (
        "import json\n"
        "from PIL import Image\n"
        "from transformers import AutoConfig, AutoProcessor\n"
        f"folder = {str(tmp_path / 'vllm')!r}\n"
        "config = AutoConfig.from_pretrained(folder, trust_remote_code=True)\n"
        "processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)\n"
        "image = Image.new('RGB', (500, 300))\n"
        "ids = processor(text='<|image_1|>\\nRepresent the given image', images=[image])['input_ids'][0].tolist()\n"
        "print(json.dumps({'type': config.model_type, 'hidden': config.hidden_size,\n"
        "    'layer_idx': config.img_processor['layer_idx'], 'order': config.embd_layer['hd_transform_order'],\n"
        "    'tags': processor.img_tokens[:2], 'count': processor.calc_num_image_tokens_from_image_size(500, 300),\n"
        "    'placeholders': ids.count(32044)}))\n"
    )
    loaded = run_isolated(code, tmp_path)
    assert loaded["type"] == "phi3_v" and loaded["hidden"] == model.config.hidden_size
    assert loaded["order"] == "sub_glb"
    # the tiny tower's -2 (hidden_states[-2]) stays -2; a non-negative index is written as its negative twin
    assert loaded["layer_idx"] == -2
    assert loaded["tags"] == ["<|image_1|>", "<|image_2|>"]
    assert loaded["count"] == loaded["placeholders"] > 0
    # the tiny tower is not ViT-L/14-336: vLLM would build another tower, and the report says so
    assert any("hidden_size=64" in warning for warning in report.warnings)
    assert negative_layer_idx(1, depth) == 1 - (depth + 1) and negative_layer_idx(-2, depth) == -2
