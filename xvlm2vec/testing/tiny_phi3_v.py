"""Tiny random Phi-3.5-V (``phi3_v``): config, offline tokenizer with Phi-3.5's id layout, processor.

The structure is Phi-3.5-V's (Phi3 decoder with LongRoPE and a sliding window, CLIP tower on 336x336
crops with 14-pixel patches, HD transform, separators, GELU projection) at tiny widths. The tokenizer is
a Llama-style BPE (Metaspace, byte fallback) trained offline on the en/it/es/fr/de corpus of
:mod:`xvlm2vec.testing.tokenizer_training`, laid out like Phi-3.5's: ``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, byte
tokens 3-258, pieces after them, ``<|endoftext|>`` (pad) = 32000, chat tokens and placeholders up to
``<|image|>`` = 32044; the embedding table has Phi-3.5's 32064 rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaTokenizer

from modeling_xvlm2vec.backbone_phi3_v import Phi3VModel
from modeling_xvlm2vec.configuration_phi3_v import CLIP_VIT_LARGE_PATCH14_336, PHI3_V_IMAGE_TOKEN_ID, Phi3VConfig
from modeling_xvlm2vec.image_processing_phi3_v import Phi3VImageProcessor
from modeling_xvlm2vec.processing_phi3_v import Phi3VProcessor
from xvlm2vec.phi3v_layout import original_config_from_phi3v

from .tokenizer_training import multilingual_corpus

#: Phi-3.5's embedding rows (the tokenizer itself ends at ``<|image|>`` = 32044).
PHI3_V_VOCAB_SIZE = 32064
#: First id after the sentencepiece vocabulary: ``<|endoftext|>``.
PHI3_ADDED_TOKENS_START = 32000
_NAMED_ADDED_TOKENS = {
    32000: "<|endoftext|>",
    32001: "<|assistant|>",
    32006: "<|system|>",
    32007: "<|end|>",
    32010: "<|user|>",
    PHI3_V_IMAGE_TOKEN_ID: "<|image|>",
}


def phi3_added_tokens() -> dict[int, str]:
    """Ids 32000-32044 of the Phi-3.5-V tokenizer: named tokens, the rest ``<|placeholderN|>``."""
    tokens, placeholder = {}, 0
    for token_id in range(PHI3_ADDED_TOKENS_START, PHI3_V_IMAGE_TOKEN_ID + 1):
        if token_id in _NAMED_ADDED_TOKENS:
            tokens[token_id] = _NAMED_ADDED_TOKENS[token_id]
        else:
            placeholder += 1
            tokens[token_id] = f"<|placeholder{placeholder}|>"
    return tokens


def build_tiny_phi3_tokenizer(num_pieces: int = 600) -> LlamaTokenizer:
    """Train a Llama-style BPE offline and lay it out with Phi-3.5's special-token ids.

    ``num_pieces`` is the BPE vocabulary trained on the multilingual corpus (besides the 259 special and
    byte tokens); the ids between the pieces and 32000 are filled with unused ``<|reserved_N|>`` tokens
    so that ids stay contiguous.
    """
    specials = ["<unk>", "<s>", "</s>"]
    trainer_model = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    # pieces are learnt within words (as sentencepiece does); the tokenizer itself runs Llama's Metaspace
    trainer_model.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=num_pieces + len(specials), special_tokens=specials, show_progress=False)
    trainer_model.train_from_iterator(multilingual_corpus(), trainer=trainer)
    trained = json.loads(trainer_model.to_str())["model"]

    vocab = {token: index for index, token in enumerate(specials)}
    vocab.update({f"<0x{byte:02X}>": len(specials) + byte for byte in range(256)})
    for token, _ in sorted(trained["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    if len(vocab) > PHI3_ADDED_TOKENS_START:
        raise ValueError(f"num_pieces={num_pieces} leaves no room below id {PHI3_ADDED_TOKENS_START}")
    for reserved in range(len(vocab), PHI3_ADDED_TOKENS_START):
        vocab[f"<|reserved_{reserved}|>"] = reserved
    added = phi3_added_tokens()
    vocab.update({token: token_id for token_id, token in added.items()})
    merges = [tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in trained["merges"]]

    tokenizer = LlamaTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        add_bos_token=True,
        add_eos_token=False,
        legacy=False,
        padding_side="right",
    )
    tokenizer.add_tokens(
        [AddedToken(token, special=True, normalized=False, lstrip=False, rstrip=False) for token in added.values()],
        special_tokens=True,
    )
    return tokenizer


def tiny_phi3_v_config(
    hidden: int = 64, layers: int = 2, vision_hidden: int = 64, clip_vit_large: bool = False, layer_idx: int = -2
) -> Phi3VConfig:
    """A Phi-3.5-V config at tiny widths: LongRoPE, sliding window, 336x336 crops of 14-pixel patches.

    The CLIP heads are 64 wide as in OpenAI's ViTs (so the converter reads the same tower back). With
    ``clip_vit_large`` the vision tower is the real ViT-L/14-336 shape (24 layers, width 1024), which vLLM's
    ``Phi3VForCausalLM`` hard-codes, beside the tiny decoder. ``layer_idx`` is the CLIP hidden state taken
    (``img_processor.layer_idx``; Phi-3.5-V's -2).
    """
    heads = 4
    half_head = hidden // heads // 2
    text = {
        "vocab_size": PHI3_V_VOCAB_SIZE,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "max_position_embeddings": 131072,
        "original_max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "short_factor": [1.0 + 0.05 * index for index in range(half_head)],
            "long_factor": [1.0 + 0.5 * index for index in range(half_head)],
            "factor": 131072 / 4096,
        },
        "sliding_window": 262144,
        "pad_token_id": 32000,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    vision = (
        dict(CLIP_VIT_LARGE_PATCH14_336)
        if clip_vit_large
        else {
            "hidden_size": vision_hidden,
            "intermediate_size": 2 * vision_hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": max(1, vision_hidden // 64),
            "projection_dim": vision_hidden,
        }
    )
    return Phi3VConfig(text_config=text, vision_config=vision, img_processor={"layer_idx": layer_idx})


def tiny_phi3_v_processor(num_crops: int = 4, num_pieces: int = 600) -> Phi3VProcessor:
    """The Phi-3.5-V processor with the offline tiny tokenizer."""
    return Phi3VProcessor(
        image_processor=Phi3VImageProcessor(num_crops=num_crops), tokenizer=build_tiny_phi3_tokenizer(num_pieces)
    )


def tiny_phi3_v_config_and_processor(
    vocab_size: int = 600,
    hidden: int = 64,
    layers: int = 2,
    clip_vit_large: bool = False,
    layer_idx: int = -2,
    num_crops: int = 4,
    **_: Any,
) -> tuple[Phi3VConfig, Phi3VProcessor]:
    """Hook of :func:`xvlm2vec.testing.tiny_model.build_tiny_model`: tiny config and processor.

    ``vocab_size`` is the number of trained BPE pieces (the id layout stays Phi-3.5's); other keywords of
    the factory (``image_size``) do not apply: Phi-3.5-V always works on 336x336 crops. ``clip_vit_large``
    and ``layer_idx``: see :func:`tiny_phi3_v_config`; ``num_crops``: the processor's HD crops.
    """
    config = tiny_phi3_v_config(hidden=hidden, layers=layers, clip_vit_large=clip_vit_large, layer_idx=layer_idx)
    return config, tiny_phi3_v_processor(num_crops=num_crops, num_pieces=vocab_size)


def original_config_dict(config: Phi3VConfig) -> dict:
    """``config`` in the original flat ``config.json`` layout of Phi-3.5-vision-instruct (``rope_scaling`` "su")."""
    return {
        "_name_or_path": "tiny-Phi-3.5-vision-instruct",
        "auto_map": {
            "AutoConfig": "configuration_phi3_v.Phi3VConfig",
            "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM",
        },
        **original_config_from_phi3v(config),
        "tie_word_embeddings": False,
        "use_cache": True,
        "torch_dtype": "float32",
        "img_processor": {
            key: config.img_processor[key] for key in ("image_dim_out", "model_name", "name", "num_img_tokens")
        },
    }


def save_tiny_original_checkpoint(
    folder: str | Path, seed: int = 0, max_shard_size: str = "4MB", wte_alias: bool = True
) -> Path:
    """Write a tiny Phi-3.5-V checkpoint as the originals are released: flat config, sharded safetensors.

    Parameter names are the original ``Phi3VForCausalLM``'s (``model.*`` and ``lm_head.weight``; with
    ``wte_alias`` also the ``model.vision_embed_tokens.wte.weight`` copy of the token table), shards
    listed in ``model.safetensors.index.json``, plus the tokenizer and ``preprocessor_config.json``.
    Returns the folder. The weights are those of ``Phi3VModel(tiny_phi3_v_config())`` after
    ``torch.manual_seed(seed)``, and a random LM head.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_phi3_v_config()
    torch.manual_seed(seed)
    model = Phi3VModel(config)
    state = {f"model.{key}": value.detach().clone().contiguous() for key, value in model.state_dict().items()}
    state["lm_head.weight"] = torch.randn(config.text_config.vocab_size, config.text_config.hidden_size) * 0.02
    if wte_alias:
        state["model.vision_embed_tokens.wte.weight"] = state["model.embed_tokens.weight"].clone()
    split = split_torch_state_dict_into_shards(
        state, filename_pattern="model{suffix}.safetensors", max_shard_size=max_shard_size
    )
    for filename, keys in split.filename_to_tensors.items():
        save_file({key: state[key] for key in keys}, str(folder / filename), metadata={"format": "pt"})
    if split.is_sharded:
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
            "weight_map": split.tensor_to_filename,
        }
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps(original_config_dict(config), indent=2), encoding="utf-8")
    preprocessor = {
        "image_processor_type": "Phi3VImageProcessor",
        "num_crops": 4,
        "num_img_tokens": 144,
        "processor_class": "Phi3VProcessor",
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2), encoding="utf-8")
    build_tiny_phi3_tokenizer().save_pretrained(folder)
    return folder


__all__ = [
    "PHI3_V_VOCAB_SIZE",
    "original_config_dict",
    "save_tiny_original_checkpoint",
    "build_tiny_phi3_tokenizer",
    "phi3_added_tokens",
    "tiny_phi3_v_config",
    "tiny_phi3_v_config_and_processor",
    "tiny_phi3_v_processor",
]
