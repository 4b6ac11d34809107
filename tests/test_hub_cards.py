"""Cards: numbers from the evaluation JSON, hyperparameters from the recipe, YAML that round-trips."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard, SpaceCard

from dataset_builders.parallel import build_parallel
from hub_cards.dataset_card import render_dataset_card
from hub_cards.metric_card import render_metric_card, space_files
from hub_cards.model_card import render_model_card
from xvlm2vec.testing.fixtures import write_parallel
from xvlm2vec.testing.tiny_model import save_tiny_model
from xvlm2vec_common.results_document import model_entry, results_document

REPO_ROOT = Path(__file__).resolve().parents[1]
# (config, language) -> precision@1 of the two styles run; the card shows their mean.
STUDENT = {
    ("xtd_t2i", "en"): (0.6100, 0.6300),
    ("xtd_t2i", "it"): (0.4300, 0.4342),
    ("xm_i2t", "de"): (0.2900, 0.2956),
}
TEACHER = {
    ("xtd_t2i", "en"): (0.7000, 0.7000),
    ("xtd_t2i", "it"): (0.1100, 0.1300),
    ("xm_i2t", "de"): (0.0500, 0.0700),
}
RECIPE = {
    "model_name_or_path": "TIGER-Lab/VLM2Vec-Full",
    "dataset_name": "someone/xvlm2vec-parallel",
    "dataset_config": "all",
    "learning_rate": 1.0e-5,
    "lr_scheduler_type": "cosine",
    "max_grad_norm": 0.3,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 4,
    "lora_target_modules": ["q_proj", "v_proj"],
    "languages": ["it", "es", "fr", "de"],
}
TRAINER_STATE = {
    "global_step": 37,
    "epoch": 1.0,
    "log_history": [
        {"loss": 0.5123, "step": 30, "epoch": 0.81},
        {"eval_loss": 0.4987, "step": 37, "epoch": 1.0},
        {"train_loss": 0.4711, "train_runtime": 12.5, "step": 37, "epoch": 1.0},
    ],
}


def scores_of(cells: dict) -> list[dict]:
    """Score records of ``results.json`` for the given (config, language) -> (plain, punct) precision@1."""
    records = []
    for (config, lang), values in cells.items():
        dataset, task = config.rsplit("_", 1)
        for style, value in zip(("plain", "punct"), values):
            records.append(
                {
                    "dataset": dataset,
                    "task": task,
                    "config": config,
                    "language": lang,
                    "style": style,
                    "num_queries": 100,
                    "skipped_queries": 0,
                    "ties_at_top": 0,
                    "precision@1": value,
                    "recall@5": 0.9,
                    "recall@10": 0.95,
                    "mrr": 0.7,
                    "ndcg@10": 0.75,
                }
            )
    return records


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny saved xVLM2Vec folder (random weights)."""
    return save_tiny_model("qwen2_vl", tmp_path_factory.mktemp("model") / "student")


@pytest.fixture(scope="module")
def card_inputs(tmp_path_factory, model_dir) -> dict[str, Path]:
    """results.json (student and teacher), recipe YAML and trainer_state.json in a temporary folder."""
    folder = tmp_path_factory.mktemp("inputs")
    document = results_document(
        [
            model_entry(str(model_dir), "xvlm2vec", "f1", scores_of(STUDENT)),
            model_entry("teacher", "xvlm2vec", "f0", scores_of(TEACHER)),
        ],
        "someone/mmmeb",
        {"xtd_t2i/en": "x"},
        ["plain", "punct"],
    )
    paths = {
        "results": folder / "results.json",
        "recipe": folder / "paper.yaml",
        "state": folder / "trainer_state.json",
    }
    paths["results"].write_text(json.dumps(document))
    paths["recipe"].write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    paths["state"].write_text(json.dumps(TRAINER_STATE))
    return paths


@pytest.fixture(scope="module")
def model_card(model_dir, card_inputs) -> ModelCard:
    """The student's card rendered from all inputs."""
    return render_model_card(
        model_dir, card_inputs["results"], card_inputs["recipe"], card_inputs["state"], repo_id="someone/xvlm2vec-tiny"
    )


def test_model_index_holds_this_models_numbers(model_card):
    mean_type = "precision_at_1_mean_over_styles"
    entries = {
        (r.dataset_config, r.dataset_split): r for r in model_card.data.eval_results if r.metric_type == mean_type
    }
    assert set(entries) == set(STUDENT)
    styled = {
        (r.dataset_config, r.dataset_split, r.metric_type): r.metric_value
        for r in model_card.data.eval_results
        if r.metric_type != mean_type
    }
    for key, (plain, punct) in STUDENT.items():
        # The card reports percent rounded to 2 decimals: half a hundredth of a point is the rounding bound.
        assert entries[key].metric_value == pytest.approx(100 * (plain + punct) / 2, abs=0.005)
        assert entries[key].dataset_type == "someone/mmmeb"
        assert entries[key].metric_name == "Precision@1 (mean over formatting styles)"
        # The primary numbers, one per style, are there too.
        assert styled[(*key, "precision_at_1_plain")] == pytest.approx(100 * plain, abs=0.005)
        assert styled[(*key, "precision_at_1_punct")] == pytest.approx(100 * punct, abs=0.005)


def test_model_card_tables_show_results_recipe_and_state(model_card):
    text = model_card.text
    # The per-style table (primary) comes first; the means over styles follow, labelled.
    assert re.search(r"\| \S*student \| xtd_t2i \| plain \| 61\.0 \| – \| 43\.0 \|", text)
    assert text.index("per formatting style") < text.index("Mean over styles plain, punct")
    mean_section = text[text.index("Mean over styles plain, punct") :]
    # Markdown tables print percent with one decimal: 43.21 -> 43.2, 29.28 -> 29.3, 62.0.
    languages = re.search(r"\| model \| config \| ([^\n]*) \|\n", mean_section).group(1).split(" | ")

    def row(model: str, config: str) -> dict[str, str]:
        cells = re.search(rf"\| \S*{model} \| {config} \| ([^\n]*) \|\n", mean_section).group(1).split(" | ")
        return dict(zip(languages, cells))

    assert row("student", "xtd_t2i") == {"en": "62.0", "de": "–", "it": "43.2"}
    assert row("student", "xm_i2t") == {"en": "–", "de": "29.3", "it": "–"}
    assert row("teacher", "xtd_t2i")["it"] == "12.0"
    for key, value in RECIPE.items():
        shown = json.dumps(value) if isinstance(value, list) else str(value)
        assert f"| `{key}` | `{shown}` |" in text
    assert "Training run (from `trainer_state.json`)" in text
    for line in (
        "- optimisation steps: 37",
        "- mean training loss: 0.4711",
        "- last logged training loss: 0.5123 (step 30)",
        "- last evaluation loss: 0.4987",
        "- training time: 12.5 s",
    ):
        assert line in text
    # Per-language instructions come from the model's config (the protocol's table).
    assert "Trovami un'immagine di tutti i giorni che corrisponda alla didascalia data: {text}" in text
    assert "<\\|image_1\\|>\\nStellen Sie das gegebene Bild für die Klassifizierung dar" in text


def test_model_card_metadata(model_card):
    data = model_card.data
    assert data.base_model == "TIGER-Lab/VLM2Vec-Full"
    assert data.datasets == ["someone/xvlm2vec-parallel"]  # training data only; MMMEB is in the model-index
    assert data.language == ["en", "de", "es", "fr", "it"]
    assert data.license == "apache-2.0" and data.library_name == "sentence-transformers"
    assert "transformers" in data.tags  # the folder loads with both libraries
    assert 'prompt_name="t2i_query_it"' in model_card.text and "SentenceTransformer(" in model_card.text
    assert "@misc{musacchio2025xvlm2vec" in model_card.text


def test_model_card_round_trips(model_card, tmp_path):
    path = tmp_path / "README.md"
    model_card.save(path)
    loaded = ModelCard.load(path)
    assert loaded.data.to_dict() == model_card.data.to_dict()
    assert loaded.text.strip() == model_card.text.strip()
    front = path.read_text().split("---\n")[1]
    assert yaml.safe_load(front)["model-index"][0]["name"] == "xvlm2vec-tiny"


def test_model_card_usage_snippet_is_valid_python(model_card):
    code = re.search(r"```python\n(.*?)```", model_card.text, re.S).group(1)
    compile(code, "usage", "exec")  # raises SyntaxError on a badly quoted instruction
    assert 'AutoModel.from_pretrained("someone/xvlm2vec-tiny", trust_remote_code=True)' in code


def test_model_card_shows_run_values_and_final_metrics_without_trainer_state(model_dir, tmp_path):
    folder = Path(shutil.copytree(model_dir, tmp_path / "run"))
    (folder / "all_results.json").write_text(json.dumps({"epoch": 3.0, "train_loss": 0.0421, "train_runtime": 7.25}))
    # The run overrode the recipe's learning rate on the command line.
    (folder / "training_args.json").write_text(json.dumps({"learning_rate": 2e-5, "max_grad_norm": 0.3}))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    text = render_model_card(folder, recipe_yaml=recipe).text
    assert "| `learning_rate` | `1e-05` | `2e-05` |" in text
    assert "| `max_grad_norm` | `0.3` | `0.3` |" in text
    assert '| `lora_target_modules` | `["q_proj", "v_proj"]` | – |' in text
    assert "Training run (from `all_results.json`)" in text
    assert "- mean training loss: 0.0421" in text and "- epochs: 3" in text
    assert "optimisation steps" not in text  # all_results.json does not record them
    assert "No evaluation results were given" in text


def test_model_card_picks_the_named_model(model_dir, card_inputs):
    card = render_model_card(model_dir, card_inputs["results"], results_model="teacher")
    values = {
        (r.dataset_config, r.dataset_split): r.metric_value
        for r in card.data.eval_results
        if r.metric_type == "precision_at_1_mean_over_styles"
    }
    assert values[("xtd_t2i", "it")] == pytest.approx(12.0, abs=0.005)  # teacher's mean of 0.11 and 0.13


def test_model_card_refuses_ambiguous_or_unknown_inputs(tmp_path, model_dir, card_inputs):
    document = json.loads(card_inputs["results"].read_text())
    document["models"][0]["name"] = "elsewhere"  # neither entry names the model folder
    ambiguous = tmp_path / "ambiguous.json"
    ambiguous.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="several models"):
        render_model_card(model_dir, ambiguous)
    with pytest.raises(ValueError, match="no model named 'nobody'"):
        render_model_card(model_dir, card_inputs["results"], results_model="nobody")
    document["data"]["source"] = str(tmp_path)  # local data: the model-index needs a Hub id
    local = tmp_path / "local.json"
    local.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="mmmeb_dataset_id"):
        render_model_card(model_dir, local, results_model="teacher")
    document["models"][1]["averages"]["overall"] = 1.5
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"does not follow the results schema at models/1/averages/overall"):
        render_model_card(model_dir, invalid, results_model="teacher", mmmeb_dataset_id="someone/mmmeb")
    bad_recipe = tmp_path / "recipe.yaml"
    bad_recipe.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="recipe .*expected a mapping"):
        render_model_card(model_dir, recipe_yaml=bad_recipe)


def test_dataset_card_keeps_builder_yaml_and_adds_metadata(built_mmmeb, tmp_path):
    built = DatasetCard.load(built_mmmeb / "README.md").data
    card = render_dataset_card(built_mmmeb, repo_id="someone/mmmeb")
    assert card.data["configs"] == built["configs"]
    assert card.data["dataset_info"] == built["dataset_info"]
    assert card.data["license"] == built["license"] and card.data["language"] == built["language"]
    assert card.data["size_categories"] == ["n<1K"]
    assert "visual-question-answering" in card.data["task_categories"]
    path = tmp_path / "README.md"
    card.save(path)
    assert DatasetCard.load(path).data.to_dict() == card.data.to_dict()


def test_dataset_card_sizes_come_from_the_build_report(built_mmmeb):
    report = json.loads((built_mmmeb / "build_report.json").read_text())
    full = render_dataset_card(built_mmmeb).text
    text = full[full.index("## Configurations and sizes") :]  # the sources table also names configs
    header = re.search(r"\| configuration \| ([^\n]*) \| total \|", text).group(1).split(" | ")
    for config in ("xtd_t2i", "flickr30k_entities_vg"):
        cells = re.search(rf"\| `{config}` \| ([^\n]*) \|\n", text).group(1).split(" | ")
        expected = [str(report["split_rows"].get(f"{config}/{split}", "–")) for split in header]
        assert cells[:-1] == expected
        assert int(cells[-1]) == sum(v for k, v in report["split_rows"].items() if k.startswith(f"{config}/"))
    assert f"**{report['rows_out']}**" in text
    assert "Crossmodal-3600" in full and "`positive_index` | int32" in text


def test_dataset_card_refuses_a_report_of_another_folder(built_mmmeb, tmp_path):
    report = json.loads((built_mmmeb / "build_report.json").read_text())
    rows = report["split_rows"]["xtd_t2i/it"]
    report["split_rows"]["xtd_t2i/it"] = rows + 1
    other = tmp_path / "build_report.json"
    other.write_text(json.dumps(report))
    with pytest.raises(ValueError, match=rf"xtd_t2i/it has {rows + 1} rows but the card's dataset_info says {rows}"):
        render_dataset_card(built_mmmeb, other)


def test_dataset_card_refuses_a_failed_build(built_mmmeb, tmp_path):
    report = json.loads((built_mmmeb / "build_report.json").read_text())
    report.update(passed=False, rejected={"unreadable image": 3}, max_rejects=0)
    failed = tmp_path / "build_report.json"
    failed.write_text(json.dumps(report))
    with pytest.raises(ValueError, match=r"the build FAILED \(3 rows rejected, limit 0\)"):
        render_dataset_card(built_mmmeb, failed)


def test_parallel_corpus_card(tmp_path):
    write_parallel(tmp_path / "src", rows=12)
    report = build_parallel(tmp_path / "src", tmp_path / "out", dev_fraction=0.2)
    card = render_dataset_card(tmp_path / "out", repo_id="someone/parallel")
    assert card.data["pretty_name"] == "xVLM2Vec parallel corpus"
    assert card.data["source_datasets"] == ["TIGER-Lab/MMEB-train"]
    sizes = card.text[card.text.index("## Configurations and sizes") :]
    for key, count in report.split_rows.items():
        config, split = key.split("/")
        assert re.search(rf"\| `{config}` \|[^\n]*\b{count}\b", sizes), key
    assert "MADLAD-400" in card.text
    assert "**total**" not in sizes  # `all` is the union of the language configs: no double-counting sum
    assert card.data["size_categories"] == ["n<1K"]
    assert DatasetCard(str(card)).data.to_dict() == card.data.to_dict()


def test_metric_card_gains_space_metadata_and_keeps_its_own():
    own = SpaceCard.load(REPO_ROOT / "metrics" / "mmmeb" / "README.md")
    card = render_metric_card(REPO_ROOT / "metrics" / "mmmeb")
    assert card.data["sdk"] == "gradio" and card.data["app_file"] == "app.py"
    assert card.data["title"] == own.data["title"] and card.data["description"] == own.data["description"]
    assert {"evaluate", "metric"} <= set(card.data["tags"]) and set(own.data["tags"]) <= set(card.data["tags"])
    assert card.text == own.text
    assert SpaceCard(str(card)).data.to_dict() == card.data.to_dict()
    files = space_files("someone/mmmeb")
    assert 'evaluate.load("someone/mmmeb")' in files["app.py"]
    compile(files["app.py"], "app.py", "exec")
