"""The original Phi-3.5-V / VLM2Vec checkpoint layout: its flat ``config.json`` both ways, and its parameter names.

The layout of ``microsoft/Phi-3.5-vision-instruct`` and VLM2Vec-Full (``model_type`` ``phi3_v``,
decoder fields at the top level, LongRoPE as ``rope_scaling`` type ``su``). ``xvlm2vec convert``
reads it, ``xvlm2vec export --format vllm`` writes it, and the tiny test checkpoints are written in it.
"""

from __future__ import annotations

from modeling_xvlm2vec.configuration_phi3_v import CLIP_VIT_LARGE_PATCH14_336, PHI3_V_IMAGE_TOKEN_ID, Phi3VConfig

#: Decoder fields of the original flat config that go to ``text_config``.
TEXT_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "resid_pdrop",
    "embd_pdrop",
    "attention_dropout",
    "hidden_act",
    "max_position_embeddings",
    "original_max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "sliding_window",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)
#: Keys of the original config that carry nothing for the embedding model (loading and generation settings).
IGNORED_CONFIG_KEYS = frozenset(
    {
        "_name_or_path",
        "architectures",
        "auto_map",
        "model_type",
        "torch_dtype",
        "dtype",
        "transformers_version",
        "use_cache",
        "_attn_implementation",
        "tie_word_embeddings",
        "quantization_config",
    }
)
#: Dropped parameters: the LM head and the vision embedding's alias of the token table.
LM_HEAD_PREFIX = "lm_head."
WTE_ALIAS = "model.vision_embed_tokens.wte.weight"
EMBED_TOKENS = "model.embed_tokens.weight"


def rope_parameters_from_original(original: dict) -> dict:
    """transformers 5 ``rope_parameters`` for the original ``rope_theta`` / ``rope_scaling``.

    Phi-3.5-V's ``rope_scaling`` type ``su`` is LongRoPE (short factors up to
    ``original_max_position_embeddings`` tokens, long factors beyond, attention scaled by
    ``sqrt(1 + ln(factor) / ln(original))`` with ``factor = max / original``), transformers' ``longrope``.
    """
    theta = float(original.get("rope_theta", 10000.0))
    scaling = original.get("rope_scaling")
    if not scaling:
        return {"rope_type": "default", "rope_theta": theta}
    kind = scaling.get("type", scaling.get("rope_type"))
    if kind not in ("su", "longrope"):
        raise ValueError(f"config.json: rope_scaling type {kind!r} is not supported (Phi-3.5-V uses 'su')")
    # the scaling factor the original derives from the two lengths, stated explicitly as transformers asks
    factor = original["max_position_embeddings"] / original["original_max_position_embeddings"]
    return {
        "rope_type": "longrope",
        "rope_theta": theta,
        "short_factor": list(scaling["short_factor"]),
        "long_factor": list(scaling["long_factor"]),
        "factor": factor,
    }


def phi3v_config_from_original(
    original: dict, vision_config: dict | None = None, image_token_id: int = PHI3_V_IMAGE_TOKEN_ID
) -> tuple[Phi3VConfig, list[str]]:
    """Map the original flat Phi-3.5-V ``config.json`` to a nested :class:`Phi3VConfig`.

    ``vision_config`` is the CLIP tower's (see :func:`clip_config_from_weights`); ViT-L/14-336 by default.

    Returns the config and the original keys it ignored (reported, never silently dropped). Raises
    ``ValueError`` for another model type, another vision tower, or keys this port does not know.
    """
    if original.get("model_type") != "phi3_v":
        raise ValueError(f"config.json: model_type is {original.get('model_type')!r}, expected 'phi3_v'")
    img_processor = dict(original.get("img_processor") or {})
    if img_processor.get("model_name", "openai/clip-vit-large-patch14-336") != "openai/clip-vit-large-patch14-336":
        raise ValueError(
            f"config.json: img_processor.model_name {img_processor['model_name']!r} is not CLIP ViT-L/14-336"
        )
    embd_layer = dict(original.get("embd_layer") or {})
    known = set(TEXT_CONFIG_KEYS) | {"img_processor", "embd_layer", "rope_theta", "rope_scaling"}
    unknown = sorted(set(original) - known - IGNORED_CONFIG_KEYS)
    if unknown:
        raise ValueError(f"config.json: keys this converter does not know: {unknown}")
    text = {key: original[key] for key in TEXT_CONFIG_KEYS if key in original}
    text.setdefault("pad_token_id", 32000)
    text["rope_parameters"] = rope_parameters_from_original(original)
    config = Phi3VConfig(
        text_config=text,
        vision_config=dict(vision_config or CLIP_VIT_LARGE_PATCH14_336),
        img_processor=img_processor,
        embd_layer=embd_layer,
        image_token_id=image_token_id,
    )
    return config, sorted(set(original) & IGNORED_CONFIG_KEYS)


def original_config_from_phi3v(config: Phi3VConfig) -> dict:
    """The inverse of :func:`phi3v_config_from_original`: ``config`` as the original flat ``config.json``.

    The layout of Phi-3.5-vision-instruct / VLM2Vec-Full (``model_type`` ``phi3_v``, architecture
    ``Phi3VForCausalLM``, decoder fields at the top level, LongRoPE as ``rope_scaling`` type ``su``).
    Loading and generation settings (``tie_word_embeddings``, ``torch_dtype``, ``auto_map``) are left
    to the caller.
    """
    text = config.text_config
    rope = dict(text.rope_parameters or {})
    original = {"architectures": ["Phi3VForCausalLM"], "model_type": "phi3_v"}
    original.update({key: getattr(text, key) for key in TEXT_CONFIG_KEYS if getattr(text, key, None) is not None})
    original["rope_theta"] = rope.get("rope_theta", 10000.0)
    if rope.get("rope_type") == "longrope":
        original["rope_scaling"] = {
            "type": "su",
            "short_factor": list(rope["short_factor"]),
            "long_factor": list(rope["long_factor"]),
        }
    original["embd_layer"] = dict(config.embd_layer)
    original["img_processor"] = dict(config.img_processor)
    return original
