"""Tiny random xVLM2Vec models for tests and the demo: built from configs, tokenizers trained offline.

Nothing here downloads anything. Each backbone gets the same structure as the real family at a tiny
size (hidden <= 64, <= 2 layers, small images) and a byte-level BPE tokenizer trained on a small
multilingual corpus (en, it, es, fr, de) that contains the MMMEB instructions.

CLI: ``xvlm2vec tiny-model --backbone qwen3_vl --output-dir DIR [--convention qwen3_vl_embedding]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from modeling_xvlm2vec import XVLM2VecConfig, XVLM2VecModel
from modeling_xvlm2vec.conventions import CONVENTIONS

from .tiny_phi3_v import tiny_phi3_v_config_and_processor
from .tokenizer_training import train_tokenizer


def _qwen_family(
    backbone: str, vocab_size: int, hidden: int, layers: int, image_size: int, intermediate: int
) -> tuple[Any, Any]:
    """Tiny Qwen2-VL / Qwen2.5-VL / Qwen3-VL config and processor (one tokenizer, the families' own vision towers).

    Qwen3-VL's decoder has an explicit ``head_dim`` (32 here: vLLM's CPU attention needs at least 32), interleaved
    M-RoPE and DeepStack (vision features added to the first decoder layers); its vision patches are 16 pixels.
    """
    from transformers import Qwen2VLImageProcessor

    special = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    tokenizer = train_tokenizer(special, vocab_size, pad_token="<|endoftext|>", eos_token="<|im_end|>")
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in special}
    head_dim = 32 if backbone == "qwen3_vl" else hidden // 4
    mrope = [head_dim // 4, head_dim // 8, head_dim // 8]  # (t, h, w) rotary pairs: they sum to head_dim / 2
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
    )
    common = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    patch = 14
    if backbone == "qwen2_vl":
        from transformers import Qwen2VLConfig

        vision = dict(
            depth=layers,
            embed_dim=hidden,
            hidden_size=hidden,
            num_heads=4,
            mlp_ratio=2,
            patch_size=patch,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_channels=3,
        )
        config = Qwen2VLConfig(text_config=text, vision_config=vision, **common)
    elif backbone == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        vision = dict(
            depth=layers,
            hidden_size=hidden,
            out_hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_heads=4,
            patch_size=patch,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[layers - 1],
            in_channels=3,
        )
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **common)
    else:
        from transformers import Qwen3VLConfig

        patch = 16
        text["head_dim"] = head_dim
        text["rope_parameters"]["mrope_interleaved"] = True
        vision = dict(
            depth=layers,
            hidden_size=hidden,
            out_hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_heads=2,
            patch_size=patch,
            spatial_merge_size=2,
            temporal_patch_size=2,
            num_position_embeddings=64,
            deepstack_visual_indexes=list(range(min(layers, 2))),
            in_channels=3,
        )
        config = Qwen3VLConfig(text_config=text, vision_config=vision, **common)
    side = max(image_size, 4 * patch)  # at least 2x2 image tokens (one token per 2x2 patches)
    image_processor = Qwen2VLImageProcessor(
        min_pixels=side * side // 4, max_pixels=side * side, patch_size=patch, merge_size=2
    )
    processor = _qwen_processor(backbone, image_processor, tokenizer)
    return config, processor


def _qwen_processor(backbone: str, image_processor: Any, tokenizer: Any) -> Any:
    """The family's processor over the tiny image processor and tokenizer."""
    if backbone == "qwen3_vl":
        from transformers import Qwen3VLProcessor, Qwen3VLVideoProcessor

        return Qwen3VLProcessor(
            image_processor=image_processor, tokenizer=tokenizer, video_processor=Qwen3VLVideoProcessor()
        )
    from transformers import Qwen2VLProcessor, Qwen2VLVideoProcessor

    return Qwen2VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor()
    )


def _llava_next(vocab_size: int, hidden: int, layers: int, image_size: int, intermediate: int) -> tuple[Any, Any]:
    """Tiny LLaVA-Next config (Llama decoder, CLIP vision tower) and processor (PIL image processor)."""
    from transformers import LlavaNextConfig, LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    special = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tokenizer = train_tokenizer(
        special, vocab_size, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    patch = 8
    text = dict(
        model_type="llama",
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = dict(
        model_type="clip_vision_model",
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch,
        projection_dim=hidden,
    )
    pinpoints = [[image_size, image_size], [image_size, 2 * image_size], [2 * image_size, image_size]]
    config = LlavaNextConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-1,
        image_seq_length=(image_size // patch) ** 2,
    )
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    return config, processor


def _phi3_v(
    vocab_size: int, hidden: int, layers: int, image_size: int, intermediate: int, **options: Any
) -> tuple[Any, Any]:
    """Tiny Phi-3.5-V config and processor (see :mod:`xvlm2vec.testing.tiny_phi3_v`; ``options``: its
    ``clip_vit_large``, ``layer_idx``, ``num_crops``)."""
    return tiny_phi3_v_config_and_processor(
        vocab_size=vocab_size, hidden=hidden, layers=layers, intermediate=intermediate, **options
    )


BUILDERS: dict[str, Callable[..., tuple[Any, Any]]] = {
    "qwen2_vl": lambda **kw: _qwen_family("qwen2_vl", **kw),
    "qwen2_5_vl": lambda **kw: _qwen_family("qwen2_5_vl", **kw),
    "qwen3_vl": lambda **kw: _qwen_family("qwen3_vl", **kw),
    "llava_next": _llava_next,
    "phi3_v": _phi3_v,
}


def build_tiny_model(
    backbone: str,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    vocab_size: int = 600,
    image_size: int = 56,
    intermediate: int | None = None,
    pooling: str = "last",
    padding_side: str = "right",
    normalize: bool = True,
    convention: str = "vlm2vec",
    **backbone_options: Any,
) -> tuple[XVLM2VecModel, Any]:
    """Build a tiny random XVLM2Vec model of ``backbone`` and its processor (attached to the model).

    ``intermediate`` is the decoder MLP width (default ``2 * hidden``); ``convention`` the input convention of a
    published embedder (``modeling_xvlm2vec.conventions``); ``backbone_options`` go to the backbone's builder
    (Phi-3.5-V: ``clip_vit_large``, ``layer_idx``, ``num_crops``; a builder refuses options it does not know).
    """
    if backbone not in BUILDERS:
        raise ValueError(f"unsupported backbone type {backbone!r}; supported: {sorted(BUILDERS)}")
    backbone_config, processor = BUILDERS[backbone](
        vocab_size=vocab_size,
        hidden=hidden,
        layers=layers,
        image_size=image_size,
        intermediate=intermediate or 2 * hidden,
        **backbone_options,
    )
    config = XVLM2VecConfig(
        backbone_config=backbone_config,
        pooling=pooling,
        padding_side=padding_side,
        normalize=normalize,
        convention=convention,
    )
    torch.manual_seed(seed)
    model = XVLM2VecModel(config).eval()
    model.set_processor(processor)
    return model, processor


def save_tiny_model(backbone: str, output_dir: str | Path, seed: int = 0, **kwargs: Any) -> Path:
    """Build a tiny model and save it as a loadable model folder (config, code, safetensors, processor)."""
    model, _ = build_tiny_model(backbone, seed=seed, **kwargs)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    return output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec tiny-model``."""
    parser.add_argument("--backbone", required=True, choices=sorted(BUILDERS), help="backbone family")
    parser.add_argument("--output-dir", required=True, type=Path, help="folder to write the model to")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    parser.add_argument("--hidden", type=int, default=64, help="decoder and vision width")
    parser.add_argument("--layers", type=int, default=2, help="decoder and vision depth")
    parser.add_argument("--image-size", type=int, default=56, help="image side the processor targets")
    parser.add_argument("--pooling", choices=["last", "mean"], default="last", help="pooling of the embeddings")
    parser.add_argument(
        "--convention", choices=sorted(CONVENTIONS), default="vlm2vec", help="input convention (docs/teachers.md)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the tiny model folder and print where it is."""
    path = save_tiny_model(
        args.backbone,
        args.output_dir,
        seed=args.seed,
        hidden=args.hidden,
        layers=args.layers,
        image_size=args.image_size,
        pooling=args.pooling,
        convention=args.convention,
    )
    print(f"tiny {args.backbone} model written to {path}")
    return 0
