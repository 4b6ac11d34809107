"""Parallel-corpus test data in the layout of docs/architecture.md, written with `datasets`, and its checks."""

from __future__ import annotations

import io
import random
from pathlib import Path

import datasets
from PIL import Image

TAG = "<|image_1|>"
WORDS = {
    "en": ["red", "cat", "house", "river", "blue", "dog", "tree", "car", "small", "big", "green", "bird"],
    "it": [
        "rosso",
        "gatto",
        "casa",
        "fiume",
        "blu",
        "cane",
        "albero",
        "auto",
        "piccolo",
        "grande",
        "verde",
        "uccello",
    ],
}
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "source_dataset": datasets.Value("string"),
        "lang": datasets.Value("string"),
        "text_en": datasets.Value("string"),
        "text_lang": datasets.Value("string"),
        "image": datasets.Image(),
    }
)


def png(color: tuple[int, int, int], size: int = 28) -> bytes:
    """A plain PNG image of `color`."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def parallel_rows(count: int, seed: int = 0, image_every: int = 3, lang: str = "it") -> list[dict]:
    """`count` parallel rows: 3-word English phrases and their word-by-word translations; some with an image."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        picks = rng.sample(range(len(WORDS["en"])), 3)
        text_en = " ".join(WORDS["en"][i] for i in picks)
        text_x = " ".join(WORDS["it"][i] for i in picks)
        image = None
        if image_every and index % image_every == 0:
            text_en, text_x = f"{TAG}\n{text_en}", f"{TAG}\n{text_x}"
            image = {"bytes": png((rng.randrange(256), rng.randrange(256), rng.randrange(256))), "path": None}
        rows.append(
            {
                "id": f"row-{index}",
                "source_dataset": "synthetic",
                "lang": lang,
                "text_en": text_en,
                "text_lang": text_x,
                "image": image,
            }
        )
    return rows


def write_parallel_corpus(folder: Path, train: int = 24, dev: int = 12, seed: int = 0) -> Path:
    """Write a Hub-layout folder (config `it`, splits `train` and `dev`) and return it."""
    card = ["---", "configs:", "- config_name: it", "  data_files:"]
    for split, count, split_seed in (("train", train, seed), ("dev", dev, seed + 1000)):
        rows = parallel_rows(count, seed=split_seed)
        path = folder / "it" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows, features=FEATURES).to_parquet(str(path))
        card += [f"  - split: {split}", f"    path: it/{path.name}"]
    (folder / "README.md").write_text("\n".join(card + ["---", "", "Synthetic parallel corpus for tests.", ""]))
    return folder


def test_written_corpus_loads_with_load_dataset(tmp_path: Path) -> None:
    folder = write_parallel_corpus(tmp_path / "corpus", train=6, dev=3)
    train = datasets.load_dataset(str(folder), "it", split="train")
    assert train.column_names == list(FEATURES)
    assert len(train) == 6
    assert isinstance(train.features["image"], datasets.Image)
    with_image = [row for row in train if row["image"] is not None]
    assert len(with_image) == 2  # rows 0 and 3 of 6 carry an image (image_every=3)
    assert all(row["text_en"].startswith(TAG) and row["text_lang"].startswith(TAG) for row in with_image)


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_student(seed: int = 0):
    """A tiny Qwen2-VL XVLM2Vec model wrapped with LoRA exactly as train.py does (TRL ModelConfig)."""
    from trl import ModelConfig

    from xvlm2vec.testing.tiny_model import build_tiny_model
    from xvlm2vec.training.models import add_lora

    model, _ = build_tiny_model("qwen2_vl", seed=seed)
    model_args = ModelConfig(
        use_peft=True,
        lora_r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        lora_task_type="FEATURE_EXTRACTION",
        lora_target_modules=LORA_TARGETS,
    )
    return add_lora(model, model_args)


def skd_config(output_dir: Path, **overrides):
    """A fast, deterministic CPU `SKDConfig` for tests."""
    from xvlm2vec.training import SKDConfig

    settings = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        report_to="none",
        logging_steps=1,
        learning_rate=2e-3,
        lr_scheduler_type="constant",
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        save_strategy="no",
        disable_tqdm=True,
        seed=42,
        max_length=64,
    )
    settings.update(overrides)
    return SKDConfig(**settings)


def corpus_splits(folder: Path) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The train and dev splits of a corpus folder, loaded as train.py loads them."""

    from xvlm2vec.training.data import load_split
    from xvlm2vec.training.script import SKDScriptArguments

    script_args = SKDScriptArguments(dataset_name=str(folder), dataset_config="it")
    return load_split(script_args, "train", None), load_split(script_args, "dev", None)
