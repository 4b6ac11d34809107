"""Data sets written in exactly the released formats, from the one synthetic world (verb ``xvlm2vec fixtures``).

Small fixtures (``xvlm2vec fixtures KIND``, the tests):

* ``mmmeb``: ``{dataset}_{lang}_{card}_formatted_{task}.jsonl`` for every task and language,
  images under the data root as the id-resolution rule says.
* ``parallel``: ``parallel_shuffled.jsonl`` (keys ``id, text_en, text_lang, img_en, img_lang``)
  plus the MMEB images it points to.
* ``mmeb-train``: MMEB-train subsets as a Hub-layout folder (one config per subset, columns
  ``qry, qry_image_path, pos_text, pos_image_path, neg_text, neg_image_path``) plus images.

Their scenes, texts and images come from :mod:`xvlm2vec.testing.world` (single-object scenes,
captions in en/it/es/fr/de from its lexicon), so a caption and its image agree. The whole world's
splits (the demo) are written by :func:`write_mmmeb_release` and :func:`write_parallel_release`.
Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset
from PIL import Image, ImageColor

from dataset_builders.mmeb_train import IMAGE_TAG, MMEB_TRAIN_SUBSETS
from dataset_builders.mmmeb import TASKS, TaskSpec, resolve_image_id
from modeling_xvlm2vec.instructions import LANGUAGES, STYLES, style_query
from xvlm2vec_common.cli_arguments import positive_int
from xvlm2vec_common.safe_outputs import atomic_output_dir

from .lexicon import LANGUAGES as WORLD_LANGUAGES
from .lexicon import Scene, caption, class_name, world_instructions
from .world import (
    RELEASE_TASKS,
    RGB,
    Example,
    Picture,
    World,
    all_scenes,
    candidate_prompt,
    query_prompt,
    render_scene,
    task_examples,
    task_languages,
)

FIXTURE_IMAGE_SIZE = 16


def _scenes(rng: random.Random, n: int) -> list[Scene]:
    """``n`` single-object scenes of the world, shuffled with ``rng`` (cycled when ``n`` is large)."""
    scenes = [scene for scene in all_scenes() if scene.count == 1]
    rng.shuffle(scenes)
    return [scenes[i % len(scenes)] for i in range(n)]


def write_image(path: Path, colour: str, size: int = FIXTURE_IMAGE_SIZE, seed: int = 0) -> Path:
    """Write a small plain image of ``colour`` (a world colour or a PIL colour name) with a seeded speckle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (size, size), RGB.get(colour) or ImageColor.getrgb(colour))
    rng = random.Random(seed)
    for _ in range(4):
        img.putpixel((rng.randrange(size), rng.randrange(size)), (rng.randrange(256),) * 3)
    img.save(path)
    return path


def write_scene(path: Path, scene: Scene, size: int = FIXTURE_IMAGE_SIZE, seed: int = 0) -> Path:
    """Render ``scene`` with the world's renderer and save it at ``path``; the suffix picks the format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    render_scene(scene, size, random.Random(seed)).save(path)
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
    id_style = {
        "xtd": "{k}",
        "xm": "{k}",
        "imagenet-1k-val": "val/{k}",
        "flickr30k_entities": "flickr30k_entities_crops/{k}.png",
        "maxm_v1": "{k}.png",
    }
    for spec in TASKS:
        scenes = _scenes(rng, rows_per_file + num_candidates)
        image_ids = []
        for i, scene in enumerate(scenes):
            image_id = id_style[spec.dataset].format(k=f"{spec.task}_{i:04d}")
            write_scene(root / resolve_image_id(image_id, spec.dataset), scene, seed=seed + i)
            image_ids.append(image_id)
        for lang in spec.languages:
            rows = []
            for q in range(rows_per_file):
                order = [q] + [j for j in range(len(scenes)) if j != q][: num_candidates - 1]
                texts = [caption(scenes[j], lang) for j in order]
                row: dict = {}
                if spec.query_image_field:
                    row[spec.query_image_field] = image_ids[q]
                if spec.query_text_field:
                    row[spec.query_text_field] = (
                        class_name(scenes[q].shape, scenes[q].colour, lang)
                        if spec.task == "vg"
                        else (texts[0] + ("?" if spec.task == "vqa" else ""))
                    )
                row[spec.candidate_field] = [image_ids[j] for j in order] if spec.image_candidates else texts
                rows.append(row)
            written.append(_write_jsonl(root / spec.filename(lang), rows))
    return written


def mmeb_train_rows(subset: str, n: int, seed: int = 0) -> list[dict]:
    """Synthetic MMEB-train rows for ``subset``: image queries tagged with ``<|image_1|>\\n``."""
    rng = random.Random(f"{seed}-{subset}")
    tag = IMAGE_TAG
    rows = []
    for i, scene in enumerate(_scenes(rng, n)):
        text_query = i % 3 == 2  # every third row is a text query with an image target
        image = f"images/{subset}/{i:05d}.jpg"
        other = _scenes(rng, 1)[0]
        rows.append(
            {
                "qry": f"Find a caption for the image: {caption(scene, 'en')}"
                if text_query
                else f"{tag}Represent the given image with the following question: what colour is the {scene.shape}?",
                "qry_image_path": "" if text_query else image,
                "pos_text": f"{tag}Represent the given image."
                if text_query
                else f"The {scene.shape} is {scene.colour}.",
                "pos_image_path": image if text_query else "",
                "neg_text": f"The {other.shape} is {other.colour}.",
                "neg_image_path": "",
            }
        )
    return rows


def write_mmeb_train(
    output_dir: str | Path, rows_per_subset: int = 6, subsets: tuple[str, ...] = MMEB_TRAIN_SUBSETS, seed: int = 0
) -> Path:
    """Write MMEB-train subsets as a Hub-layout folder (config per subset, split ``train``) with images."""
    root = Path(output_dir)
    configs = []
    for subset in subsets:
        rows = mmeb_train_rows(subset, rows_per_subset, seed)
        scenes = _scenes(random.Random(f"{seed}-{subset}-images"), len(rows))
        for i, row in enumerate(rows):
            for key in ("qry_image_path", "pos_image_path"):
                if row[key] and not (root / row[key]).exists():
                    write_scene(root / row[key], scenes[i], seed=seed + i)
        Dataset.from_list(rows).to_parquet(str(root / "data" / subset / "train-00000-of-00001.parquet"))
        configs.append(
            f"- config_name: {subset}\n  data_files:\n  - split: train\n    path: data/{subset}/train-*.parquet"
        )
    (root / "README.md").write_text(
        "---\nconfigs:\n" + "\n".join(configs) + "\n---\n\n# MMEB-train (synthetic)\n", encoding="utf-8"
    )
    return root


def write_parallel(
    output_dir: str | Path, rows: int = 40, seed: int = 0, languages: tuple[str, ...] = LANGUAGES[1:]
) -> Path:
    """Write ``parallel_shuffled.jsonl`` in the release format (and its images); return its path."""
    root = Path(output_dir)
    rng = random.Random(seed)
    tag = IMAGE_TAG
    lines = []
    for i, scene in enumerate(_scenes(rng, rows)):
        lang = languages[i % len(languages)]
        with_image = i % 2 == 0
        image = f"images/parallel/{i:05d}.jpg" if with_image else None
        if image:
            write_scene(root / image, scene, seed=seed + i)
        prefix = tag if with_image else ""
        lines.append(
            {
                "id": i // 2,
                "text_en": prefix + caption(scene, "en") + ".",
                "text_lang": prefix + caption(scene, lang) + ".",
                "img_en": image,
                "img_lang": image,
            }
        )
    rng.shuffle(lines)
    return _write_jsonl(root / "parallel_shuffled.jsonl", lines)


def _save(picture: Picture, folder: Path) -> None:
    path = folder / f"{picture.name}.png"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        picture.image.save(path)


def write_mmmeb_release(world: World, output_dir: str | Path) -> list[Path]:
    """Write the test split as released MMMEB files (``{dataset}_{lang}_{card}_formatted_{task}.jsonl`` + images)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task, spec in RELEASE_TASKS.items():
        for lang in task_languages(task):
            path = output_dir / spec.filename(lang)
            with path.open("w", encoding="utf-8") as handle:
                for example in task_examples(world, "test", task, lang):
                    handle.write(json.dumps(_release_record(example, spec, output_dir), ensure_ascii=False) + "\n")
            written.append(path)
    return written


def _release_record(example: Example, spec: TaskSpec, root: Path) -> dict:
    """One release line (saving its images): ids resolve under ``root`` by the release's rule."""
    images = root / f"{spec.dataset}_images"
    record: dict = {}
    if spec.query_text_field:
        record[spec.query_text_field] = example.query_text
    if spec.query_image_field:
        _save(example.query_image, images)
        record[spec.query_image_field] = f"{example.query_image.name}.png"  # no folder: under {dataset}_images/
    if spec.image_candidates:
        crops = example.task == "vg"
        for picture in example.candidate_images:
            _save(picture, images / "crops" if crops else images)
        record[spec.candidate_field] = [
            f"{spec.dataset}_images/crops/{p.name}.png" if crops else f"{p.name}.png" for p in example.candidate_images
        ]
    else:
        record[spec.candidate_field] = example.candidate_texts
    return record


def _has_instruction(task: str, side: str, lang: str) -> bool:
    return lang in world_instructions()[task].get(side, {})


def parallel_pairs(
    world: World, lang: str, style_rng: random.Random
) -> Iterator[tuple[str, str, str, Picture | None]]:
    """(task, English text, ``lang`` text, image) pairs of the training split: queries, text positives, image
    candidates.

    Queries keep their instruction (as the released corpus does, translated with the text) where
    the protocol has one in ``lang``; the query text and the text positive also come alone.
    """
    for task in RELEASE_TASKS:
        english = task_examples(world, "train", task, "en")
        foreign = task_examples(world, "train", task, lang)
        for en, xx in zip(english, foreign):
            style = style_rng.choice(STYLES)
            if _has_instruction(task, "query", lang):
                yield task, query_prompt(en, style=style), query_prompt(xx, style=style), en.query_image
            if en.query_text is not None:
                question = task == "vqa"
                yield (
                    task,
                    style_query(en.query_text, style, question),
                    style_query(xx.query_text, style, question),
                    None,
                )
            if en.candidate_texts:
                yield (
                    task,
                    candidate_prompt(task, "en", en.candidate_texts[0], style),
                    candidate_prompt(task, lang, xx.candidate_texts[0], style),
                    None,
                )
            elif _has_instruction(task, "candidate", lang):
                yield (
                    task,
                    candidate_prompt(task, "en", None),
                    candidate_prompt(task, lang, None),
                    en.candidate_images[0],
                )


def write_parallel_release(
    world: World, output_dir: str | Path, languages: tuple[str, ...] = WORLD_LANGUAGES[1:]
) -> Path:
    """Write the training split as ``parallel_shuffled.jsonl`` (+ images), shuffled with the seed.

    Lines have the released keys plus ``lang`` and ``source_dataset``, as the project's corpus
    reproduction writes them, so the builder makes one config per language.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    images = output_dir / "images"
    rows = []
    for lang in languages:
        seen = set()
        for task, text_en, text_lang, picture in parallel_pairs(
            world, lang, random.Random(f"{world.config.seed}-{lang}")
        ):
            key = (text_en, text_lang, None if picture is None else picture.name)
            if key in seen:
                continue
            seen.add(key)
            path = None
            if picture is not None:
                _save(picture, images)
                path = f"images/{picture.name}.png"
            rows.append(
                {
                    "id": f"{lang}-{len(seen):06d}",
                    "text_en": text_en,
                    "text_lang": text_lang,
                    "img_en": path,
                    "img_lang": path,
                    "lang": lang,
                    "source_dataset": f"world-{task}",
                }
            )
    random.Random(world.config.seed).shuffle(rows)
    path = output_dir / "parallel_shuffled.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``xvlm2vec fixtures``."""
    parser.add_argument("kind", choices=["mmmeb", "parallel", "mmeb-train"], help="which release format to write")
    parser.add_argument("--output-dir", required=True, type=Path, help="folder to write into")
    parser.add_argument("--rows", type=positive_int, default=None, help="rows per file / subset (default: small)")
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
