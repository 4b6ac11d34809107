"""The MTEB ``ModelMeta`` of an xVLM2Vec model, filled from what its folder records.

Each field comes from one place (docs/integrations.md lists them):

- ``languages``: the languages of the model's instruction table (``config.instructions``), as MTEB's
  ISO 639-3 + script codes (``ita-Latn``);
- ``revision``: the first 40 hex digits of the SHA-256 of the weights (:func:`weights_fingerprint`), so
  MTEB's result cache keeps results of different weights apart, as it does Hub commits;
- ``release_date``: the day (UTC) the folder's weights were written (None for a Hub repo: MTEB then
  takes the repo's first commit date);
- ``n_parameters``, ``n_embedding_parameters``, ``memory_usage_mb``: counted on the loaded model;
- ``max_tokens``: the decoder's ``max_position_embeddings``; ``embed_dim``: ``config.hidden_size``;
- ``license``, ``adapted_from`` (``base_model``), ``public_training_data`` (the first of ``datasets``):
  the model card (``README.md`` front matter, as ``xvlm2vec publish`` writes it);
- ``training_datasets``: the MTEB tasks MTEB records for the base model, plus the MTEB tasks built from
  MMEB-train's datasets when the base model is a VLM2Vec release or a card dataset is MMEB-train (the
  teachers were trained on it and the parallel corpus translates it), plus any given;
- ``reference``: the Hub page of ``name`` when it is a Hub id, else the paper;
- ``public_training_code``: the released xVLM2Vec training code unless another URL is given.
"""

from __future__ import annotations

import datetime
import logging
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import mteb
from huggingface_hub import ModelCard
from mteb.languages.iso_mappings import _hf_lang_to_iso_lang_script
from mteb.models.model_meta import ModelMeta
from mteb.types import OutputDType
from mteb.types._metadata import Licenses

from hub_cards.templates_io import citation
from xvlm2vec.fingerprint import weights_fingerprint
from xvlm2vec_common.cli_arguments import is_hub_id

logger = logging.getLogger(__name__)

PAPER = "https://arxiv.org/abs/2503.09313"
#: The training code released with the paper (this project's `released` recipe reproduces it).
RELEASED_TRAINING_CODE = "https://github.com/swapUniba/xVLM2Vec"
#: Weight files whose modification day is the folder's release date, in order of preference.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
MTEB_LICENSES = set(typing.get_args(Licenses))
#: The MTEB tasks built from the datasets of the 20 MMEB-train subsets the parallel corpus translates (A-OKVQA,
#: ImageNet-A/-R, N24News and Visual7W have none in MTEB). The VLM2Vec teachers were trained on MMEB-train.
MMEB_TRAIN_TASKS = frozenset(
    {
        "CIFAR100",
        "CIFAR100Clustering",
        "CIFAR100ZeroShot",
        "CIRRIT2IRetrieval",
        "FashionIQIT2IRetrieval",
        "Imagenet1k",
        "Imagenet1kZeroShot",
        "MSCOCOI2TRetrieval",
        "MSCOCOT2IRetrieval",
        "NIGHTSI2IRetrieval",
        "OKVQAIT2TRetrieval",
        "SUN397",
        "SUN397ZeroShot",
        "VOC2007.v2",
        "VisualNewsI2TRetrieval",
        "VisualNewsT2IRetrieval",
        "WebQAT2ITRetrieval",
        "WebQAT2TRetrieval",
    }
)
#: Hub ids (datasets, or models trained on it) that mean MMEB-train is in a model's training data.
MMEB_TRAIN_LINEAGE = frozenset({"TIGER-Lab/MMEB-train", "TIGER-Lab/VLM2Vec-Full", "TIGER-Lab/VLM2Vec-LoRA"})


def model_label(name_or_path: str) -> str:
    """An ``organisation/name`` label for MTEB: the Hub id, or ``local/<folder name>``."""
    return f"local/{Path(name_or_path).name}" if Path(name_or_path).exists() else name_or_path


def read_card_data(name_or_path: str, revision: str | None = None) -> dict[str, Any]:
    """The front matter of the model card (``README.md``) of a folder, or of a Hub repo when it can be read."""
    folder = Path(name_or_path)
    try:
        if folder.is_dir():
            path = folder / "README.md"
            if not path.is_file():
                return {}
        else:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(name_or_path, "README.md", revision=revision)
        return ModelCard.load(path).data.to_dict()
    except Exception as error:  # noqa: BLE001 - no card (offline, none in the repo) means no card fields
        logger.info("no model card read from %s: %s", name_or_path, error)
        return {}


def mteb_languages(codes: Iterable[str]) -> list[str]:
    """MTEB codes (``ita-Latn``) of language codes, in order; a code MTEB does not know is left out with a warning."""
    out = []
    for code in codes:
        iso = _hf_lang_to_iso_lang_script(code)
        if iso is None:
            logger.warning("language %r has no ISO 639-3 code MTEB knows; left out of the ModelMeta", code)
        elif iso not in out:
            out.append(iso)
    return out


def instruction_languages(instructions: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    """The languages of an instruction table (task -> side -> language), English first."""
    codes = {lang for sides in instructions.values() for by_lang in sides.values() for lang in by_lang}
    return sorted(codes, key=lambda code: (code != "en", code))


def release_date(name_or_path: str) -> str | None:
    """The day (UTC, ``YYYY-MM-DD``) the folder's weights were written; None for a Hub repo or no weight file."""
    for name in WEIGHT_FILES:
        path = Path(name_or_path) / name
        if path.is_file():
            stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.timezone.utc)
            return stamp.date().isoformat()
    return None


def lineage_training_datasets(base_model: str | None, datasets: Iterable[str]) -> set[str] | None:
    """MTEB tasks in the training data of a model with this base model and these training datasets.

    The tasks MTEB records for ``base_model``, plus :data:`MMEB_TRAIN_TASKS` when the base model or a dataset
    is in :data:`MMEB_TRAIN_LINEAGE`; None when neither says anything (unknown, not "none").
    """
    tasks: set[str] | None = None
    if base_model:
        try:
            tasks = set(mteb.get_model_meta(base_model).training_datasets or ())
        except (KeyError, ValueError):
            pass  # a base model MTEB does not list (nothing is downloaded to find out)
    if MMEB_TRAIN_LINEAGE & {base_model, *datasets}:
        tasks = (tasks or set()) | MMEB_TRAIN_TASKS
    return tasks


def card_license(card: dict[str, Any]) -> str | None:
    """The card's license as MTEB names it (its ``license_link`` for a license MTEB has no name for)."""
    license_name = card.get("license")
    if license_name in MTEB_LICENSES:
        return license_name
    if card.get("license_link"):
        return card["license_link"]
    if license_name:
        logger.warning("license %r is not one MTEB names and the card gives no license_link", license_name)
    return None


def build_model_meta(
    model: Any,
    name_or_path: str,
    *,
    repo_id: str | None = None,
    loader: Callable[..., Any] | None = None,
    loader_kwargs: dict[str, Any] | None = None,
    training_datasets: Iterable[str] | None = None,
    training_code: str = RELEASED_TRAINING_CODE,
    revision: str | None = None,
) -> ModelMeta:
    """The ``ModelMeta`` of a loaded xVLM2Vec ``model`` read from ``name_or_path`` (see the module docstring).

    ``loader`` (with ``loader_kwargs``) is how MTEB loads the model again from ``name``.
    ``repo_id`` is the Hub id the model is (or will be) published under: MTEB's name and reference;
    default the Hub id given, or ``local/<folder name>``. ``revision`` replaces the weights fingerprint.
    """
    config = model.config
    card = read_card_data(name_or_path, revision if is_hub_id(name_or_path) else None)
    base = card.get("base_model")
    base = base[0] if isinstance(base, list) and base else base
    datasets = card.get("datasets") or []
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    trained_on = lineage_training_datasets(base, datasets)
    if training_datasets is not None:
        trained_on = (trained_on or set()) | set(training_datasets)
    hub_id = repo_id or (name_or_path if is_hub_id(name_or_path) else None)
    name = hub_id or model_label(name_or_path)
    parameters = list(model.parameters())
    text_config = getattr(config.backbone_config, "text_config", None) or config.backbone_config
    return ModelMeta(
        loader=loader,
        loader_kwargs=loader_kwargs or {},
        name=name,
        revision=revision or weights_fingerprint(model)[:40],
        release_date=release_date(name_or_path),
        languages=mteb_languages(instruction_languages(config.instructions)),
        n_parameters=sum(p.numel() for p in parameters),
        n_embedding_parameters=model.get_input_embeddings().weight.numel(),
        memory_usage_mb=round(sum(p.numel() * p.element_size() for p in parameters) / 2**20, 1),
        max_tokens=getattr(text_config, "max_position_embeddings", None),
        embed_dim=config.hidden_size,
        license=card_license(card),
        open_weights=True,
        public_training_code=training_code,
        public_training_data=f"https://huggingface.co/datasets/{datasets[0]}" if datasets else None,
        framework=["PyTorch", "Transformers", "Sentence Transformers", "safetensors"],
        reference=f"https://huggingface.co/{hub_id}" if hub_id else PAPER,
        similarity_fn_name="cosine",
        use_instructions=True,
        training_datasets=trained_on,
        adapted_from=base or None,
        modalities=["text", "image"],
        model_type=["dense"],
        citation=citation(),
        output_dtypes=OutputDType.FLOAT32,
    )


__all__ = ["MMEB_TRAIN_TASKS", "PAPER", "RELEASED_TRAINING_CODE", "build_model_meta", "model_label", "read_card_data"]
