"""``xvlm2vec convert phi3v``: an original Phi-3.5-V / VLM2Vec checkpoint folder -> an XVLM2Vec model folder.

The input is a folder as released on the Hub for ``microsoft/Phi-3.5-vision-instruct`` (or a VLM2Vec
full checkpoint): the flat ``config.json``, weights as safetensors or pickled ``.bin`` files (single or
sharded with an index; ``.bin`` files are read with ``torch.load(weights_only=True)``), and the tokenizer.
``--lora`` merges a peft LoRA adapter trained on that base (VLM2Vec's LoRA release) with peft's own
``merge_and_unload``. The output folder holds the XVLM2Vec config (``auto_map``), the model code,
safetensors weights and the processor, and loads with
``AutoModel.from_pretrained(folder, trust_remote_code=True)``. Pooling: last token, normalised (VLM2Vec).

Parameter names are the original's (the backbone is held as ``model``); the LM head is dropped, as is the
vision embedding's alias of the token table (``model.vision_embed_tokens.wte.weight``, checked equal to
``model.embed_tokens.weight``) and any saved CLIP ``position_ids`` buffer. Anything else that does not
load is an error.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from modeling_xvlm2vec import XVLM2VecConfig, XVLM2VecModel
from modeling_xvlm2vec.configuration_phi3_v import CLIP_VIT_LARGE_PATCH14_336
from modeling_xvlm2vec.image_processing_phi3_v import Phi3VImageProcessor
from modeling_xvlm2vec.processing_phi3_v import Phi3VProcessor
from xvlm2vec.phi3v_layout import EMBED_TOKENS, LM_HEAD_PREFIX, WTE_ALIAS, phi3v_config_from_original
from xvlm2vec.progress import bar_disabled
from xvlm2vec_common.cli_arguments import positive_int
from xvlm2vec_common.cli_errors import UsageError
from xvlm2vec_common.safe_outputs import atomic_output_dir

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ConvertConfig:
    """Arguments of a conversion.

    Attributes:
        input: original checkpoint folder (``config.json``, weights, tokenizer).
        output_dir: folder to write the XVLM2Vec model to.
        lora: optional peft LoRA adapter folder to merge into the base weights.
        num_crops: HD crops of the processor; default: the input's ``preprocessor_config.json``, else 4.
        dtype: ``auto`` (the checkpoint's floating dtype), ``float32``, ``bfloat16`` or ``float16``.
    """

    input: Path
    output_dir: Path
    lora: Path | None = None
    num_crops: int | None = None
    dtype: str = "auto"


@dataclass
class ConversionReport:
    """What a conversion did: counts, dropped keys and what did not load (both must be empty)."""

    input: str
    output_dir: str
    tensors_read: int
    dropped: list[str] = field(default_factory=list)
    ignored_config_keys: list[str] = field(default_factory=list)
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    lora_merged: str | None = None
    lora_modules: int = 0
    dtype: str = ""
    num_crops: int = 4


def read_json(path: Path) -> dict:
    """Read a JSON file, raising ``ValueError`` naming it when it is missing or malformed."""
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def clip_config_from_weights(state: dict[str, torch.Tensor]) -> dict:
    """The CLIP tower's size read from its weights (the original config hard-codes ViT-L/14-336).

    Width, patch size, image size (from the number of positions), depth and MLP width come from the
    tensors; heads are width / 64 (the head size of OpenAI's CLIP ViTs). For a real checkpoint this
    gives exactly ViT-L/14-336.
    """
    prefix = "model.vision_embed_tokens.img_processor.vision_model."
    try:
        patch = state[prefix + "embeddings.patch_embedding.weight"]
        positions = state[prefix + "embeddings.position_embedding.weight"].shape[0]
        fc1 = state[prefix + "encoder.layers.0.mlp.fc1.weight"]
    except KeyError as error:
        raise ValueError(f"the checkpoint has no CLIP vision tower weight {error.args[0]!r}") from error
    layers = {
        key[len(prefix + "encoder.layers.") :].split(".")[0]
        for key in state
        if key.startswith(prefix + "encoder.layers.")
    }
    grid = round((positions - 1) ** 0.5)
    width = patch.shape[0]
    return {
        **CLIP_VIT_LARGE_PATCH14_336,
        "hidden_size": width,
        "patch_size": patch.shape[-1],
        "image_size": grid * patch.shape[-1],
        "num_hidden_layers": len(layers),
        "intermediate_size": fc1.shape[0],
        "num_attention_heads": max(1, width // 64),
    }


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint's weight files: from a safetensors or ``.bin`` index, else the single file."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            names = sorted(set(read_json(index).get("weight_map", {}).values()))
            if not names:
                raise ValueError(f"{index}: empty weight_map")
            missing = [name for name in names if not (folder / name).is_file()]
            if missing:
                raise ValueError(f"{index}: shards listed but not found: {missing}")
            return [folder / name for name in names]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return [folder / single]
    raise ValueError(f"{folder}: no weights (model.safetensors[.index.json] or pytorch_model.bin[.index.json])")


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint in ``folder`` (``.bin`` via ``torch.load(weights_only=True)``)."""
    state: dict[str, torch.Tensor] = {}
    for path in tqdm(weight_files(folder), desc="read shards", unit="file", disable=bar_disabled()):
        if path.suffix == ".safetensors":
            part = load_file(str(path))
        else:
            part = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if not isinstance(part, dict) or not all(isinstance(v, torch.Tensor) for v in part.values()):
                raise ValueError(f"{path}: not a state dict of tensors")
        duplicated = sorted(set(part) & set(state))
        if duplicated:
            raise ValueError(f"{path}: tensors already read from another shard: {duplicated[:5]}")
        state.update(part)
    return state


def to_xvlm2vec_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop the LM head, the ``wte`` alias of the token table and CLIP ``position_ids`` buffers.

    The names of everything else are already XVLM2Vec's (the backbone is held as ``model``). Raises
    ``ValueError`` if the ``wte`` alias differs from ``model.embed_tokens.weight``.
    """
    state = dict(state)
    dropped = sorted(key for key in state if key.startswith(LM_HEAD_PREFIX) or key.endswith(".position_ids"))
    if WTE_ALIAS in state:
        alias = state.pop(WTE_ALIAS)
        if EMBED_TOKENS not in state:
            state[EMBED_TOKENS] = alias
        elif not torch.equal(alias, state[EMBED_TOKENS]):
            raise ValueError(f"{WTE_ALIAS} differs from {EMBED_TOKENS}; the original ties them")
        dropped.append(WTE_ALIAS)
    for key in dropped:
        state.pop(key, None)
    return state, dropped


def load_processor(folder: Path, num_crops: int | None) -> Phi3VProcessor:
    """The Phi-3.5-V processor from the input's tokenizer and image-processor settings (right padding)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder}: cannot load the tokenizer ({error})") from error
    preprocessor = folder / "preprocessor_config.json"
    settings = read_json(preprocessor) if preprocessor.is_file() else {}
    image_processor = Phi3VImageProcessor(
        num_crops=num_crops or settings.get("num_crops", 4),
        image_mean=settings.get("image_mean"),
        image_std=settings.get("image_std"),
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|endoftext|>"
    tokenizer.padding_side = "right"
    return Phi3VProcessor(image_processor=image_processor, tokenizer=tokenizer)


def merge_lora(model: XVLM2VecModel, lora: Path) -> tuple[XVLM2VecModel, int]:
    """Merge a peft LoRA adapter folder into ``model`` with peft's ``merge_and_unload``.

    Returns the merged model and the number of LoRA-wrapped modules. The adapter's task type is not used:
    the adapter is applied to the base model as is.
    """
    from peft import PeftConfig, PeftModel
    from peft.tuners.lora import LoraLayer

    if not (lora / "adapter_config.json").is_file():
        raise ValueError(f"{lora}: no adapter_config.json (not a peft adapter folder)")
    peft_config = PeftConfig.from_pretrained(str(lora))
    peft_config.task_type = None
    peft_model = PeftModel.from_pretrained(model, str(lora), config=peft_config)
    wrapped = sum(isinstance(module, LoraLayer) for module in peft_model.modules())
    if wrapped == 0:
        raise ValueError(f"{lora}: the adapter's target_modules match no module of the model")
    return peft_model.merge_and_unload(), wrapped


def convert(config: ConvertConfig) -> ConversionReport:
    """Run a conversion and write the XVLM2Vec folder; returns the report (also saved as JSON there)."""
    folder = Path(config.input)
    if not folder.is_dir():
        raise UsageError(f"--input {folder}: not a folder{'' if folder.exists() else ' (it does not exist)'}")
    if config.lora is not None and not Path(config.lora).is_dir():
        raise UsageError(f"--lora {config.lora}: no such folder")
    original = read_json(folder / "config.json")
    processor = load_processor(folder, config.num_crops)
    state = read_state_dict(folder)
    tensors_read = len(state)
    state, dropped = to_xvlm2vec_state_dict(state)
    backbone_config, ignored = phi3v_config_from_original(
        original, clip_config_from_weights(state), processor.image_token_id
    )
    if config.dtype == "auto":
        dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float32)
    elif config.dtype in DTYPES:
        dtype = DTYPES[config.dtype]
    else:
        raise ValueError(f"--dtype {config.dtype!r}: choose auto, {', '.join(DTYPES)}")
    xconfig = XVLM2VecConfig(backbone_config=backbone_config, pooling="last", normalize=True, padding_side="right")
    model, info = XVLM2VecModel.from_pretrained(
        None, config=xconfig, state_dict=state, dtype=dtype, output_loading_info=True
    )
    report = ConversionReport(
        input=str(folder),
        output_dir=str(config.output_dir),
        tensors_read=tensors_read,
        dropped=dropped,
        ignored_config_keys=ignored,
        missing_keys=sorted(info["missing_keys"]),
        unexpected_keys=sorted(info["unexpected_keys"]),
        dtype=str(dtype).removeprefix("torch."),
        num_crops=processor.image_processor.num_crops,
    )
    if report.missing_keys or report.unexpected_keys or info.get("mismatched_keys"):
        raise ValueError(
            f"{folder}: the weights do not match Phi-3.5-V: missing {report.missing_keys[:10]}, "
            f"unexpected {report.unexpected_keys[:10]}, mismatched {list(info.get('mismatched_keys', []))[:10]}"
        )
    if config.lora is not None:
        model, report.lora_modules = merge_lora(model, Path(config.lora))
        report.lora_merged = str(config.lora)
    model.set_processor(processor)
    inputs = (folder, config.lora)
    with atomic_output_dir(config.output_dir, "conversion_report.json", inputs=inputs) as staging:
        model.save_pretrained(staging)
        (staging / "conversion_report.json").write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return report


def format_report(report: ConversionReport) -> str:
    """A readable two-column table of the report."""
    rows: list[tuple[str, Any]] = [
        ("input", report.input),
        ("output", report.output_dir),
        ("tensors read", report.tensors_read),
        ("dropped", ", ".join(report.dropped) or "-"),
        ("ignored config keys", ", ".join(report.ignored_config_keys) or "-"),
        ("missing keys", len(report.missing_keys)),
        ("unexpected keys", len(report.unexpected_keys)),
        ("LoRA merged", f"{report.lora_merged} ({report.lora_modules} modules)" if report.lora_merged else "-"),
        ("dtype", report.dtype),
        ("num_crops", report.num_crops),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec convert``."""
    parser.add_argument("source", choices=["phi3v"], help="checkpoint family to convert (Phi-3.5-V / VLM2Vec)")
    parser.add_argument("--input", required=True, type=Path, help="original checkpoint folder")
    parser.add_argument(
        "--lora", type=Path, default=None, help="peft LoRA adapter folder to merge (VLM2Vec's LoRA release)"
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="folder to write the XVLM2Vec model to")
    parser.add_argument(
        "--num-crops", type=positive_int, default=None, help="HD crops of the processor (default: the input's, else 4)"
    )
    parser.add_argument("--dtype", default="auto", choices=["auto", *DTYPES], help="dtype of the saved weights")


def run(args: argparse.Namespace) -> int:
    """Convert and print the report as a table and as JSON."""
    report = convert(
        ConvertConfig(
            input=args.input, output_dir=args.output_dir, lora=args.lora, num_crops=args.num_crops, dtype=args.dtype
        )
    )
    print(format_report(report))
    print(json.dumps(asdict(report)))
    return 0


__all__ = [
    "ConversionReport",
    "ConvertConfig",
    "clip_config_from_weights",
    "convert",
    "merge_lora",
    "read_state_dict",
    "to_xvlm2vec_state_dict",
]
