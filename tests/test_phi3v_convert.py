"""``xvlm2vec convert phi3v``: original-layout checkpoints (safetensors or .bin shards, LoRA) -> XVLM2Vec folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from modeling_xvlm2vec.backbone_phi3_v import Phi3VModel
from xvlm2vec.cli import main
from xvlm2vec.convert import ConvertConfig, convert, read_state_dict
from xvlm2vec.testing.tiny_phi3_v import save_tiny_original_checkpoint, tiny_phi3_v_config

LORA_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj", "q_proj", "k_proj", "v_proj", "out_proj"]


class OriginalLayout(torch.nn.Module):
    """Phi3VForCausalLM's module tree (``model`` + ``lm_head``), to train/merge a LoRA as VLM2Vec did."""

    def __init__(self):
        super().__init__()
        config = tiny_phi3_v_config()
        self.model = Phi3VModel(config)
        self.lm_head = torch.nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """A tiny Phi-3.5-V checkpoint in the original naming, sharded safetensors (4 shards)."""
    return save_tiny_original_checkpoint(tmp_path_factory.mktemp("orig") / "phi35v", seed=0)


@pytest.fixture(scope="module")
def converted(original, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "xvlm2vec"
    assert main(["convert", "phi3v", "--input", str(original), "--output-dir", str(out)]) == 0
    return out


def converted_weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(f)).items()}


def test_original_checkpoint_is_sharded_in_original_naming(original):
    index = json.loads((original / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert {
        "lm_head.weight",
        "model.vision_embed_tokens.wte.weight",
        "model.layers.0.self_attn.qkv_proj.weight",
        "model.vision_embed_tokens.img_processor.vision_model.encoder.layers.0.self_attn.q_proj.weight",
    } <= set(index["weight_map"])
    assert json.loads((original / "config.json").read_text())["rope_scaling"]["type"] == "su"


def test_conversion_keeps_every_weight_and_reports(original, converted):
    report = json.loads((converted / "conversion_report.json").read_text())
    assert report["missing_keys"] == [] and report["unexpected_keys"] == []
    assert report["dropped"] == ["lm_head.weight", "model.vision_embed_tokens.wte.weight"]
    source = read_state_dict(original)
    weights = converted_weights(converted)
    expected = {k: v for k, v in source.items() if k not in report["dropped"]}
    assert set(weights) == set(expected)
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    config = json.loads((converted / "config.json").read_text())
    assert config["pooling"] == "last" and config["normalize"] is True and config["padding_side"] == "right"
    assert config["auto_map"]["AutoModel"].endswith("XVLM2VecModel")
    assert config["backbone_config"]["text_config"]["rope_parameters"]["rope_type"] == "longrope"
    assert {
        "backbone_phi3_v.py",
        "configuration_phi3_v.py",
        "processing_phi3_v.py",
        "image_processing_phi3_v.py",
        "processor_config.json",
        "tokenizer.json",
        "modules.json",
        "config_sentence_transformers.json",
        "sentence_xvlm2vec.py",
    } <= {p.name for p in converted.iterdir()}
    assert not list(converted.glob("*.bin"))


def test_converted_folder_loads_in_fresh_process(converted, tmp_path, run_isolated):
    """Zero missing/unexpected keys with AutoModel, and the same embeddings as the source weights."""
    image_path = tmp_path / "image.png"
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (300, 500, 3), dtype=np.uint8)).save(image_path)
    texts = ["<|image_1|>\nRepresent the given image", "Trouvez une légende décrivant l'image donnée"]
    code = f"""
import json
from transformers import AutoModel, AutoProcessor
model, info = AutoModel.from_pretrained({str(converted)!r}, trust_remote_code=True, output_loading_info=True)
model.set_processor(AutoProcessor.from_pretrained({str(converted)!r}, trust_remote_code=True))
emb = model.encode({texts!r}, images=[{str(image_path)!r}, None])
print(json.dumps({{"missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
                   "backbone": type(model.model).__name__, "emb": emb.tolist()}}))
"""
    result = run_isolated(code, tmp_path)
    assert result["missing"] == [] and result["unexpected"] == [] and result["backbone"] == "Phi3VModel"
    # the source: the same seeded weights in this process, last token of the right-padded batch, normalised
    from transformers import AutoProcessor

    torch.manual_seed(0)
    source = Phi3VModel(tiny_phi3_v_config()).eval()
    processor = AutoProcessor.from_pretrained(converted, trust_remote_code=True)
    batch = processor(text=texts, images=[Image.open(image_path)], padding=True)
    with torch.no_grad():
        hidden = source(**batch).last_hidden_state
    last = batch["attention_mask"].sum(1) - 1
    expected = torch.nn.functional.normalize(hidden[torch.arange(2), last], dim=-1).numpy()
    # 1e-5: same float32 weights; encode may batch rows differently (padding-invariance bound)
    np.testing.assert_allclose(np.array(result["emb"]), expected, atol=1e-5)


def test_bin_shards_convert_to_the_same_weights(original, converted, tmp_path):
    """Pickled .bin shards (read with torch.load(weights_only=True)) give the same folder as safetensors."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
        shutil.copy(original / name, legacy / name)
    index = json.loads((original / "model.safetensors.index.json").read_text())
    weight_map = {}
    for shard in sorted(set(index["weight_map"].values())):
        name = shard.replace("model-", "pytorch_model-").replace(".safetensors", ".bin")
        tensors = load_file(str(original / shard))
        torch.save(tensors, legacy / name)  # test input in the legacy release format
        weight_map.update(dict.fromkeys(tensors, name))
    (legacy / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    out = tmp_path / "out"
    report = convert(ConvertConfig(input=legacy, output_dir=out))
    assert report.missing_keys == [] and report.unexpected_keys == []
    a, b = converted_weights(converted), converted_weights(out)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_lora_merge_equals_peft_merge_and_unload(original, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = OriginalLayout()
    state = read_state_dict(original)
    state.pop("model.vision_embed_tokens.wte.weight")
    base.load_state_dict(state, strict=True)
    torch.manual_seed(1)
    # init_lora_weights=False: random A and B, so the merge actually changes the weights
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, init_lora_weights=False)
    )
    lora_dir = tmp_path / "lora"
    peft_model.save_pretrained(lora_dir)
    expected = {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}

    out = tmp_path / "merged"
    assert main(["convert", "phi3v", "--input", str(original), "--lora", str(lora_dir), "--output-dir", str(out)]) == 0
    report = json.loads((out / "conversion_report.json").read_text())
    assert report["lora_merged"] == str(lora_dir) and report["lora_modules"] > 0
    merged = converted_weights(out)
    assert set(merged) == {k for k in expected if not k.startswith("lm_head.")}
    for key, value in merged.items():
        # identical float32 arithmetic (both merges are peft's on the same weights): exact up to 1e-7
        assert torch.allclose(value, expected[key], atol=1e-7, rtol=0), key
    for changed in (
        "model.layers.0.self_attn.qkv_proj.weight",
        "model.vision_embed_tokens.img_processor.vision_model.encoder.layers.0.self_attn.q_proj.weight",
    ):
        assert not torch.allclose(merged[changed], state[changed], atol=1e-4), changed
    assert torch.equal(merged["model.norm.weight"], state["model.norm.weight"])


def test_bad_inputs_are_clear_errors(original, tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        convert(ConvertConfig(input=tmp_path / "nope", output_dir=tmp_path / "o1"))
    broken = tmp_path / "broken"
    shutil.copytree(original, broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "model_type": "llava"}))
    with pytest.raises(ValueError, match="model_type is 'llava', expected 'phi3_v'"):
        convert(ConvertConfig(input=broken, output_dir=tmp_path / "o2"))
    (broken / "config.json").write_text(json.dumps({**config, "mystery_setting": 3}))
    with pytest.raises(ValueError, match="keys this converter does not know: \\['mystery_setting'\\]"):
        convert(ConvertConfig(input=broken, output_dir=tmp_path / "o3"))
    (broken / "config.json").write_text(json.dumps(config))
    shard = sorted(broken.glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(ValueError, match=f"shards listed but not found: \\['{shard.name}'\\]"):
        convert(ConvertConfig(input=broken, output_dir=tmp_path / "o4"))
    with pytest.raises(ValueError, match="no adapter_config.json"):
        convert(ConvertConfig(input=original, output_dir=tmp_path / "o5", lora=tmp_path))


def test_wte_alias_must_match_the_token_table(original, tmp_path):
    from safetensors.torch import save_file

    tampered = tmp_path / "tampered"
    shutil.copytree(original, tampered)
    index = json.loads((tampered / "model.safetensors.index.json").read_text())
    shard = tampered / index["weight_map"]["model.vision_embed_tokens.wte.weight"]
    tensors = load_file(str(shard))
    tensors["model.vision_embed_tokens.wte.weight"] = tensors["model.vision_embed_tokens.wte.weight"] + 1
    save_file(tensors, str(shard))
    with pytest.raises(ValueError, match="wte.weight differs from model.embed_tokens.weight"):
        convert(ConvertConfig(input=tampered, output_dir=tmp_path / "out"))


def test_cli_help_lists_the_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--input", "--lora", "--output-dir", "--num-crops", "phi3v"))


def phi35v_release_config() -> dict:
    """The key set and sizes of microsoft/Phi-3.5-vision-instruct's config.json (LongRoPE factor values made up)."""
    return {
        "_name_or_path": "Phi-3.5-vision-instruct",
        "architectures": ["Phi3VForCausalLM"],
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_phi3_v.Phi3VConfig",
            "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM",
        },
        "bos_token_id": 1,
        "eos_token_id": 2,
        "embd_pdrop": 0.0,
        "hidden_act": "silu",
        "hidden_size": 3072,
        "embd_layer": {
            "embedding_cls": "image",
            "hd_transform_order": "sub_glb",
            "projection_cls": "mlp",
            "use_hd_transform": True,
            "with_learnable_separator": True,
        },
        "img_processor": {
            "image_dim_out": 1024,
            "model_name": "openai/clip-vit-large-patch14-336",
            "name": "clip_vision_model",
            "num_img_tokens": 144,
        },
        "initializer_range": 0.02,
        "intermediate_size": 8192,
        "max_position_embeddings": 131072,
        "model_type": "phi3_v",
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 32,
        "original_max_position_embeddings": 4096,
        "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "long_factor": [1.0 + i for i in range(48)],
            "short_factor": [1.0 + 0.1 * i for i in range(48)],
            "type": "su",
        },
        "rope_theta": 10000.0,
        "sliding_window": 262144,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.38.1",
        "use_cache": True,
        "vocab_size": 32064,
        "_attn_implementation": "flash_attention_2",
    }


def test_release_config_maps_to_the_native_pieces():
    from modeling_xvlm2vec.image_processing_phi3_v import num_image_tokens
    from xvlm2vec.convert import clip_config_from_weights
    from xvlm2vec.phi3v_layout import phi3v_config_from_original

    # ViT-L/14-336 tower shapes (meta tensors: no memory) must be read back as ViT-L/14-336
    prefix = "model.vision_embed_tokens.img_processor.vision_model."
    state = {
        prefix + "embeddings.patch_embedding.weight": torch.empty(1024, 3, 14, 14, device="meta"),
        prefix + "embeddings.position_embedding.weight": torch.empty(577, 1024, device="meta"),
    }
    state.update(
        {prefix + f"encoder.layers.{i}.mlp.fc1.weight": torch.empty(4096, 1024, device="meta") for i in range(24)}
    )
    vision = clip_config_from_weights(state)
    assert (
        vision["hidden_size"],
        vision["num_hidden_layers"],
        vision["num_attention_heads"],
        vision["image_size"],
        vision["patch_size"],
        vision["intermediate_size"],
    ) == (1024, 24, 16, 336, 14, 4096)

    config, ignored = phi3v_config_from_original(phi35v_release_config(), vision)
    text = config.text_config
    assert (
        text.hidden_size,
        text.num_hidden_layers,
        text.num_attention_heads,
        text.vocab_size,
        text.pad_token_id,
    ) == (3072, 32, 32, 32064, 32000)
    assert text.rope_parameters["rope_type"] == "longrope" and len(text.rope_parameters["short_factor"]) == 48
    assert text.original_max_position_embeddings == 4096 and text.sliding_window == 262144
    assert (
        config.vision_config.hidden_size == 1024
        and config.merged_grid == 12
        and config.img_processor["layer_idx"] == -2
    )
    assert num_image_tokens(672, 672) == 757  # 1344x1344 VLM2Vec training images with num_crops=4
    assert set(ignored) == {
        "_name_or_path",
        "architectures",
        "auto_map",
        "model_type",
        "tie_word_embeddings",
        "torch_dtype",
        "transformers_version",
        "use_cache",
        "_attn_implementation",
    }
    with pytest.raises(ValueError, match="rope_scaling type 'yarn' is not supported"):
        phi3v_config_from_original(
            {**phi35v_release_config(), "rope_scaling": {"type": "yarn", "short_factor": [], "long_factor": []}},
            vision,
        )
    with pytest.raises(ValueError, match="is not CLIP ViT-L/14-336"):
        phi3v_config_from_original({**phi35v_release_config(), "img_processor": {"model_name": "other/clip"}}, vision)
