"""Small synthetic data sets written in exactly the released formats (verb ``xvlm2vec fixtures``).

* ``mmmeb``: ``{dataset}_{lang}_{card}_formatted_{task}.jsonl`` for every task and language,
  images under the data root as the id-resolution rule says.
* ``parallel``: ``parallel_shuffled.jsonl`` (keys ``id, text_en, text_lang, img_en, img_lang``)
  plus the MMEB images it points to.
* ``mmeb-train``: MMEB-train subsets as a Hub-layout folder (one config per subset, columns
  ``qry, qry_image_path, pos_text, pos_image_path, neg_text, neg_image_path``) plus images.

Images are tiny solid-colour PNG/JPEG files; texts are "a <colour> <object>" in en/it/es/fr/de,
so a caption and its image agree. Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from datasets import Dataset
from PIL import Image

from dataset_builders.atomic import atomic_output_dir
from dataset_builders.mmeb_train import IMAGE_TAG, MMEB_TRAIN_SUBSETS
from dataset_builders.mmmeb import TASKS, resolve_image_id
from modeling_xvlm2vec.instructions import LANGUAGES

COLOURS = {
    "red": {"en": "red", "it": "rosso", "es": "rojo", "fr": "rouge", "de": "rot"},
    "green": {"en": "green", "it": "verde", "es": "verde", "fr": "vert", "de": "grün"},
    "blue": {"en": "blue", "it": "blu", "es": "azul", "fr": "bleu", "de": "blau"},
    "yellow": {"en": "yellow", "it": "giallo", "es": "amarillo", "fr": "jaune", "de": "gelb"},
    "white": {"en": "white", "it": "bianco", "es": "blanco", "fr": "blanc", "de": "weiß"},
    "black": {"en": "black", "it": "nero", "es": "negro", "fr": "noir", "de": "schwarz"},
}
RGB = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220), "yellow": (240, 220, 40),
       "white": (245, 245, 245), "black": (15, 15, 15)}
OBJECTS = {
    "car": {"en": "car", "it": "auto", "es": "coche", "fr": "voiture", "de": "Auto"},
    "dog": {"en": "dog", "it": "cane", "es": "perro", "fr": "chien", "de": "Hund"},
    "house": {"en": "house", "it": "casa", "es": "casa", "fr": "maison", "de": "Haus"},
    "boat": {"en": "boat", "it": "barca", "es": "barco", "fr": "bateau", "de": "Boot"},
    "tree": {"en": "tree", "it": "albero", "es": "árbol", "fr": "arbre", "de": "Baum"},
}
ARTICLE = {"en": "a {c} {o}", "it": "un {o} {c}", "es": "un {o} {c}", "fr": "un {o} {c}", "de": "ein {c} {o}"}


def caption(colour: str, obj: str, lang: str) -> str:
    """The caption of a ``colour`` ``obj`` image in ``lang``."""
    return ARTICLE[lang].format(c=COLOURS[colour][lang], o=OBJECTS[obj][lang])


def _concepts(rng: random.Random, n: int) -> list[tuple[str, str]]:
    pairs = [(c, o) for c in COLOURS for o in OBJECTS]
    rng.shuffle(pairs)
    return [pairs[i % len(pairs)] for i in range(n)]


def write_image(path: Path, colour: str, size: int = 16, seed: int = 0) -> Path:
    """Write a small image of ``colour`` (with a seeded speckle) at ``path``; the suffix picks the format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (size, size), RGB[colour])
    rng = random.Random(seed)
    for _ in range(4):
        img.putpixel((rng.randrange(size), rng.randrange(size)), (rng.randrange(256),) * 3)
    img.save(path)
    return path


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_mmmeb(output_dir: str | Path, rows_per_file: int = 4, num_candidates: int = 4, seed: int = 0) -> list[Path]:
    """Write every MMMEB release file (all tasks, all their languages); return the jsonl paths.

    Image ids exercise all four id-resolution cases: ``xtd``/``xm`` ids are bare (``x`` ->
    ``{dataset}_images/x.jpg``), ``imagenet-1k-val`` ids have a folder and no extension, crops of
    ``flickr30k_entities`` a folder and an extension, ``maxm_v1`` a bare name with extension.
    """
    root = Path(output_dir)
    rng = random.Random(seed)
    written = []
    id_style = {"xtd": "{k}", "xm": "{k}", "imagenet-1k-val": "val/{k}",
                "flickr30k_entities": "flickr30k_entities_crops/{k}.png", "maxm_v1": "{k}.png"}
    for spec in TASKS:
        concepts = _concepts(rng, rows_per_file + num_candidates)
        image_ids = []
        for i, (colour, _) in enumerate(concepts):
            image_id = id_style[spec.dataset].format(k=f"{spec.task}_{i:04d}")
            write_image(root / resolve_image_id(image_id, spec.dataset), colour, seed=seed + i)
            image_ids.append(image_id)
        for lang in spec.languages:
            rows = []
            for q in range(rows_per_file):
                order = [q] + [j for j in range(len(concepts)) if j != q][: num_candidates - 1]
                texts = [caption(*concepts[j], lang) for j in order]
                row: dict = {}
                if spec.query_image_field:
                    row[spec.query_image_field] = image_ids[q]
                if spec.query_text_field:
                    row[spec.query_text_field] = OBJECTS[concepts[q][1]][lang] if spec.task == "vg" else (
                        texts[0] + ("?" if spec.task == "vqa" else ""))
                row[spec.candidate_field] = [image_ids[j] for j in order] if spec.image_candidates else texts
                rows.append(row)
            written.append(_write_jsonl(root / spec.filename(lang), rows))
    return written


def mmeb_train_rows(subset: str, n: int, seed: int = 0) -> list[dict]:
    """Synthetic MMEB-train rows for ``subset``: image queries tagged with ``<|image_1|>\\n``."""
    rng = random.Random(f"{seed}-{subset}")
    tag = IMAGE_TAG
    rows = []
    for i, (colour, obj) in enumerate(_concepts(rng, n)):
        text_query = i % 3 == 2  # every third row is a text query with an image target
        image = f"images/{subset}/{i:05d}.jpg"
        other = _concepts(rng, 1)[0]
        rows.append({
            "qry": f"Find a caption for the image: {caption(colour, obj, 'en')}" if text_query
            else f"{tag}Represent the given image with the following question: what colour is the {obj}?",
            "qry_image_path": "" if text_query else image,
            "pos_text": f"{tag}Represent the given image." if text_query else f"The {obj} is {colour}.",
            "pos_image_path": image if text_query else "",
            "neg_text": f"The {other[1]} is {other[0]}.",
            "neg_image_path": "",
        })
    return rows


def write_mmeb_train(
    output_dir: str | Path, rows_per_subset: int = 6, subsets: tuple[str, ...] = MMEB_TRAIN_SUBSETS, seed: int = 0
) -> Path:
    """Write MMEB-train subsets as a Hub-layout folder (config per subset, split ``train``) with images."""
    root = Path(output_dir)
    configs = []
    for subset in subsets:
        rows = mmeb_train_rows(subset, rows_per_subset, seed)
        for i, row in enumerate(rows):
            for key in ("qry_image_path", "pos_image_path"):
                if row[key] and not (root / row[key]).exists():
                    write_image(root / row[key], list(COLOURS)[i % len(COLOURS)], seed=seed + i)
        Dataset.from_list(rows).to_parquet(str(root / "data" / subset / "train-00000-of-00001.parquet"))
        configs.append(f"- config_name: {subset}\n  data_files:\n  - split: train\n    path: data/{subset}/train-*.parquet")
    (root / "README.md").write_text("---\nconfigs:\n" + "\n".join(configs) + "\n---\n\n# MMEB-train (synthetic)\n",
                                    encoding="utf-8")
    return root


def write_parallel(output_dir: str | Path, rows: int = 40, seed: int = 0, languages: tuple[str, ...] = LANGUAGES[1:]) -> Path:
    """Write ``parallel_shuffled.jsonl`` in the release format (and its images); return its path."""
    root = Path(output_dir)
    rng = random.Random(seed)
    tag = IMAGE_TAG
    lines = []
    for i, (colour, obj) in enumerate(_concepts(rng, rows)):
        lang = languages[i % len(languages)]
        with_image = i % 2 == 0
        image = f"images/parallel/{i:05d}.jpg" if with_image else None
        if image:
            write_image(root / image, colour, seed=seed + i)
        prefix = tag if with_image else ""
        lines.append({"id": i // 2, "text_en": prefix + caption(colour, obj, "en") + ".",
                      "text_lang": prefix + caption(colour, obj, lang) + ".", "img_en": image, "img_lang": image})
    rng.shuffle(lines)
    return _write_jsonl(root / "parallel_shuffled.jsonl", lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec fixtures``."""
    parser.add_argument("kind", choices=["mmmeb", "parallel", "mmeb-train"], help="which release format to write")
    parser.add_argument("--output-dir", required=True, type=Path, help="folder to write into")
    parser.add_argument("--rows", type=int, default=None, help="rows per file / subset (default: small)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")


FIXTURE_MARKERS = {"mmmeb": "*_formatted_*.jsonl", "parallel": "parallel_shuffled.jsonl", "mmeb-train": "README.md"}


def run(args: argparse.Namespace) -> int:
    """Write the requested fixture set (atomically: an earlier set is replaced as a whole) and print where it went."""
    with atomic_output_dir(args.output_dir, FIXTURE_MARKERS[args.kind]) as staging:
        if args.kind == "mmmeb":
            paths = write_mmmeb(staging, rows_per_file=args.rows or 4, seed=args.seed)
        elif args.kind == "parallel":
            write_parallel(staging, rows=args.rows or 40, seed=args.seed)
        else:
            write_mmeb_train(staging, rows_per_subset=args.rows or 6, seed=args.seed)
    if args.kind == "mmmeb":
        print(f"wrote {len(paths)} MMMEB release files to {args.output_dir}")
    elif args.kind == "parallel":
        print(f"wrote {args.output_dir / 'parallel_shuffled.jsonl'}")
    else:
        print(f"wrote MMEB-train subsets to {args.output_dir}")
    return 0
