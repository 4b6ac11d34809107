"""Model card of a trained xVLM2Vec model, filled from its folder, recipe, trainer state and MMMEB results.

``render_model_card`` is the Python API (used by ``xvlm2vec publish model`` and the demo). The card's
YAML is a ``ModelCardData`` with ``model-index`` entries (``EvalResult``) from
``xvlm2vec_common.results_document.model_index_entries``; the body comes from ``templates/model_card.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from huggingface_hub import ModelCard, ModelCardData

from hub_cards.templates_io import citation, template_path
from modeling_xvlm2vec.instructions import INSTRUCTIONS, LANGUAGES
from modeling_xvlm2vec.languages import LanguageRegistry, check_code, load_languages
from modeling_xvlm2vec.sentence_xvlm2vec import prompt_name
from xvlm2vec_common import results_document
from xvlm2vec_common.cli_arguments import is_hub_id

TRAINER_STATE_NAME = "trainer_state.json"  # the name transformers' Trainer writes
ALL_RESULTS_NAME = "all_results.json"  # what Trainer.save_metrics("all", ...) writes
TRAINING_ARGS_NAME = "training_args.json"  # TrainingArguments.to_json_string(), written by train.py
MODEL_TAGS = [
    "xvlm2vec",
    "vlm2vec",
    "multimodal-embeddings",
    "multilingual",
    "knowledge-distillation",
    "custom_code",
    "transformers",
    "sentence-similarity",
]


@dataclass
class TrainingSummary:
    """What the card reports from ``trainer_state.json`` (or, lacking it, ``all_results.json``)."""

    source: str
    global_step: int | None
    epoch: float | None
    train_loss: float | None
    last_loss: float | None
    last_loss_step: int | None
    eval_loss: float | None
    runtime: float | None


def read_json(path: str | Path, what: str) -> dict:
    """Parse a JSON file, raising ``ValueError`` that names ``what`` and the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{what} {path}: cannot read it as JSON ({err})") from err


def read_recipe(path: str | Path) -> dict[str, Any]:
    """Parse a training recipe YAML (a mapping of TrlParser fields)."""
    try:
        recipe = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"recipe {path}: cannot read it as YAML ({err})") from err
    if not isinstance(recipe, dict):
        raise ValueError(f"recipe {path}: expected a mapping of training arguments, got {type(recipe).__name__}")
    return recipe


def summarize_trainer_state(state: dict, source: str = TRAINER_STATE_NAME) -> TrainingSummary:
    """Steps, epochs and losses from a Trainer's ``trainer_state.json`` content."""
    history = state.get("log_history") or []
    losses = [entry for entry in history if "loss" in entry]
    evals = [entry for entry in history if "eval_loss" in entry]
    final = next((entry for entry in reversed(history) if "train_loss" in entry), {})
    return TrainingSummary(
        source=source,
        global_step=state.get("global_step"),
        epoch=state.get("epoch"),
        train_loss=final.get("train_loss"),
        last_loss=losses[-1]["loss"] if losses else None,
        last_loss_step=losses[-1].get("step") if losses else None,
        eval_loss=evals[-1]["eval_loss"] if evals else None,
        runtime=final.get("train_runtime"),
    )


def summarize_all_results(metrics: dict, source: str = ALL_RESULTS_NAME) -> TrainingSummary:
    """Epochs, losses and run time from the Trainer's final metrics (``all_results.json``); no step count."""
    return TrainingSummary(
        source=source,
        global_step=None,
        epoch=metrics.get("epoch"),
        train_loss=metrics.get("train_loss"),
        last_loss=None,
        last_loss_step=None,
        eval_loss=metrics.get("eval_loss"),
        runtime=metrics.get("train_runtime"),
    )


def find_trainer_state(model_dir: Path) -> Path | None:
    """``trainer_state.json`` in the model folder, else in its latest ``checkpoint-N`` folder."""
    direct = model_dir / TRAINER_STATE_NAME
    if direct.is_file():
        return direct
    checkpoints = sorted(
        (
            p
            for p in model_dir.glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / TRAINER_STATE_NAME).is_file()
        ),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return checkpoints[-1] / TRAINER_STATE_NAME if checkpoints else None


def _pick_results_model(document: dict, model_dir: Path, name: str | None) -> str:
    """The ``models[].name`` of this model in ``results.json``: given, the entry naming ``model_dir``, or the only
    one.
    """
    names = [m["name"] for m in document["models"]]
    if name is not None:
        if name not in names:
            raise ValueError(f"results: no model named {name!r} (have {names})")
        return name
    same_folder = [n for n in names if Path(n).exists() and Path(n).resolve() == model_dir.resolve()]
    if len(same_folder) == 1:
        return same_folder[0]
    if len(names) == 1:
        return names[0]
    raise ValueError(f"results hold several models {names}; say which one this card is for (results_model=...)")


def _table_cell(text: str) -> str:
    """Instruction text as it reads in a markdown table cell (newlines shown as \\n, pipes escaped)."""
    return text.replace("\n", "\\n").replace("|", "\\|")


def _recipe_value(value: Any) -> str:
    """A recipe value as one table cell."""
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text.replace("|", "\\|")


def language_names(codes: list[str], registry: LanguageRegistry | None = None) -> str:
    """``English (en), Portuguese (pt), ...``: names from the language registry, the code alone when unknown."""
    registry = registry or load_languages()
    return ", ".join(f"{registry.name(code)} ({code})" if code in registry else code for code in codes)


def trained_languages(run: dict[str, Any]) -> list[str]:
    """The languages a run distilled (English first): its ``languages``, a per-language ``dataset_config``, or
    the ``language`` metadata of a local parallel-corpus folder (``dataset_name``) trained on whole."""
    langs = run.get("languages") or []
    if isinstance(langs, str):
        langs = langs.split(",")
    langs = [lang.strip() for lang in langs if lang.strip()]
    config = run.get("dataset_config")
    folder = Path(str(run["dataset_name"])) if run.get("dataset_name") else None  # none: not the working folder
    if config and config != "all":
        try:
            langs.append(check_code(config))
        except ValueError:
            pass  # a config that is not one language
    elif not langs and folder is not None and (folder / "README.md").is_file():
        from huggingface_hub import DatasetCard

        metadata = DatasetCard.load(folder / "README.md", repo_type="dataset").data.get("language") or []
        langs = [metadata] if isinstance(metadata, str) else list(metadata)
    return sorted({"en", *langs}, key=lambda lang: (lang != "en", lang)) if langs else []


def render_model_card(
    model_dir: str | Path,
    results_json: str | Path | None = None,
    recipe_yaml: str | Path | None = None,
    trainer_state_json: str | Path | None = None,
    *,
    repo_id: str | None = None,
    results_model: str | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    mmmeb_dataset_id: str | None = None,
    license: str = "apache-2.0",
    languages_file: str | Path | None = None,
) -> ModelCard:
    """Return the model card of a saved xVLM2Vec folder.

    Args:
        model_dir: the saved model (``config.json`` with the backbone and instructions).
        results_json: ``results.json`` of ``xvlm2vec eval`` (schema-checked); fills the MMMEB tables and
            the ``model-index``. ``results_model`` names this model's entry when the file holds several.
        recipe_yaml: the training recipe; its fields become the training table (beside the values the run used,
            from ``model_dir/training_args.json``, which differ where the command line overrode the recipe), and its
            ``model_name_or_path`` / ``dataset_name`` the ``base_model`` / ``datasets`` when those are Hub ids.
        trainer_state_json: the Trainer's ``trainer_state.json`` (default: found in ``model_dir`` or its last
            checkpoint; lacking one, the final metrics of ``model_dir/all_results.json``).
        repo_id: where the model is published (usage snippet, ``model_name``).
        base_model, datasets, mmmeb_dataset_id, license: card metadata overriding what is inferred.
        languages_file: a language file naming languages the shipped registry does not know.
    """
    model_dir = Path(model_dir)
    config = read_json(model_dir / "config.json", "model config")
    recipe = read_recipe(recipe_yaml) if recipe_yaml is not None else {}
    run_args_path = model_dir / TRAINING_ARGS_NAME
    run_args = read_json(run_args_path, "training arguments") if run_args_path.is_file() else None
    state_path = Path(trainer_state_json) if trainer_state_json is not None else find_trainer_state(model_dir)
    if state_path is not None:
        state = summarize_trainer_state(read_json(state_path, "trainer state"), state_path.name)
    elif (model_dir / ALL_RESULTS_NAME).is_file():
        state = summarize_all_results(read_json(model_dir / ALL_RESULTS_NAME, "training metrics"))
    else:
        state = None

    base = base_model or (recipe.get("model_name_or_path") if is_hub_id(recipe.get("model_name_or_path")) else None)
    dataset_ids = list(datasets) if datasets is not None else [d for d in [recipe.get("dataset_name")] if is_hub_id(d)]

    eval_entries, results_table, results_name, result_langs = [], None, None, set()
    if results_json is not None:
        document = read_json(results_json, "results")
        try:
            results_document.validate(document)
        except jsonschema.ValidationError as err:
            where = "/".join(str(part) for part in err.absolute_path) or "(top level)"
            raise ValueError(
                f"results {results_json}: does not follow the results schema at {where}: {err.message}"
            ) from err
        results_name = _pick_results_model(document, model_dir, results_model)
        source = document["data"]["source"]
        mmmeb_id = mmmeb_dataset_id or (source if is_hub_id(source) else None)
        if mmmeb_id is None:
            raise ValueError(
                f"results {results_json}: the evaluation read local data ({source}); give mmmeb_dataset_id, "
                "the Hub id "
                "of the published MMMEB dataset, for the model-index"
            )
        eval_entries = results_document.model_index_entries(document, results_name, dataset_id=mmmeb_id)
        results_table = results_document.markdown_table(document).replace("\n## ", "\n### ").replace("## ", "### ", 1)
        result_langs = {
            lang for m in document["models"] if m["name"] == results_name for lang in m["averages"]["per_language"]
        }

    trained_langs = trained_languages({**recipe, **(run_args or {})})
    evaluated_langs = sorted(result_langs, key=lambda lang: (lang != "en", lang))
    languages = sorted({"en", *trained_langs, *result_langs}, key=lambda lang: (lang != "en", lang))
    if languages == ["en"]:
        languages = list(LANGUAGES)
    registry = load_languages(languages_file) if languages_file is not None else None
    title = (repo_id or model_dir.name).split("/")[-1]
    card_data = ModelCardData(
        language=languages,
        license=license,
        library_name="sentence-transformers",
        pipeline_tag="feature-extraction",
        base_model=base,
        datasets=dataset_ids or None,
        tags=list(MODEL_TAGS),
        model_name=title,
        eval_results=eval_entries or None,
    )

    instructions = config.get("instructions") or INSTRUCTIONS
    instruction_rows = [
        {"task": task, "side": side, "lang": lang, "text": _table_cell(text)}
        for task, sides in instructions.items()
        for side, by_lang in sides.items()
        for lang, text in by_lang.items()
    ]
    t2i = instructions.get("t2i", INSTRUCTIONS["t2i"])
    backbone = config.get("backbone_config") or {}
    text_config = backbone.get("text_config") or backbone
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path("model_card.md")),
        title=title,
        repo_id=repo_id or str(model_dir),
        backbone_type=backbone.get("model_type", "unknown"),
        pooling=config.get("pooling", "last"),
        pooling_text="last-token" if config.get("pooling", "last") == "last" else "mean-pooled",
        normalize=config.get("normalize", True),
        padding_side=config.get("padding_side", "right"),
        image_tag=_table_cell(config.get("image_tag") or ""),
        hidden_size=text_config.get("hidden_size", "unknown"),
        languages_text=language_names(languages, registry),
        trained_languages_text=language_names(trained_langs, registry) if trained_langs else "not recorded",
        evaluated_languages_text=language_names(evaluated_langs, registry) if evaluated_langs else "not evaluated",
        base_model_text=f"[{base}](https://huggingface.co/{base})"
        if base
        else (recipe.get("model_name_or_path") or "not recorded"),
        license_text=license,
        datasets_text=", ".join(dataset_ids) or (recipe.get("dataset_name") or "not recorded"),
        example_query_instruction=json.dumps(t2i["query"].get("it", t2i["query"]["en"]), ensure_ascii=False),
        example_candidate_instruction=json.dumps(
            t2i["candidate"].get("it", t2i["candidate"]["en"]), ensure_ascii=False
        ),
        example_query_prompt=prompt_name("t2i", "query", "it" if "it" in t2i["query"] else "en"),
        example_candidate_prompt=prompt_name("t2i", "candidate", "it" if "it" in t2i["candidate"] else "en"),
        instruction_rows=instruction_rows,
        recipe_name=Path(recipe_yaml).name if recipe_yaml is not None else None,
        recipe_rows=[
            (
                key,
                _recipe_value(value),
                _recipe_value(run_args[key]) if run_args is not None and key in run_args else "–",
            )
            for key, value in recipe.items()
        ],
        run_args=run_args is not None,
        state=state,
        results_table=results_table,
        results_model=results_name,
        citation=citation(),
    )
