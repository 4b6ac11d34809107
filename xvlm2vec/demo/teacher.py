"""The demo's English-only teacher: contrastive training on the synthetic world's English pairs."""

from __future__ import annotations

import random
from pathlib import Path

from modeling_xvlm2vec.instructions import STYLES, format_text
from xvlm2vec.training.contrastive import ContrastiveCollator, ContrastiveConfig, ContrastivePair, ContrastiveTrainer

from .world import RELEASE_TASKS, Example, World, candidate_prompt, query_prompt, task_examples


def _unit(task: str, example: Example) -> str:
    """The group of shape siblings an example belongs to: same task and every attribute but the shape."""
    picture = example.query_image if example.query_image is not None and example.query_image.scene else None
    if picture is None and example.candidate_images and example.candidate_images[0].scene:
        picture = example.candidate_images[0]
    if picture is None:  # grounding pictures have no single scene
        return f"{task}:{example.query_image.name}"
    scene = picture.scene
    return f"{task}:{scene.colour}-{scene.size}-{scene.side}-{scene.count}"


def teacher_pairs(world: World, seed: int, lang: str = "en") -> dict[str, list[ContrastivePair]]:
    """(query, positive) pairs of the training split in ``lang`` only, grouped by `_unit`, styles drawn at random.

    Rows with the same positive content (whatever its style) share a ``positive_key``.
    """
    rng = random.Random(f"{seed}-teacher-pairs")
    units: dict[str, list[ContrastivePair]] = {}
    for task in RELEASE_TASKS:
        for example in task_examples(world, "train", task, lang):
            style = rng.choice(STYLES)
            query_image = None if example.query_image is None else example.query_image.image
            if example.candidate_texts:
                positive = example.candidate_texts[0]
                pair = ContrastivePair(query_prompt(example, style=style), query_image, format_text(positive, style),
                                       None, f"text:{positive}")
            else:
                picture = example.candidate_images[0]
                pair = ContrastivePair(query_prompt(example, style=style), query_image,
                                       candidate_prompt(task, lang, None), picture.image, f"image:{picture.name}")
            units.setdefault(_unit(task, example), []).append(pair)
    return units


def sibling_batches(units: dict[str, list[ContrastivePair]], epochs: int, seed: int) -> list[ContrastivePair]:
    """``epochs`` passes over the pairs, each a shuffle of whole units (read them with a sequential sampler).

    Keeping a unit together puts scenes that differ only in their shape into one batch, so in-batch
    negatives also teach the shape, which random negatives rarely need (colour, count, size and side
    usually tell random scenes apart).
    """
    rng = random.Random(f"{seed}-sibling-batches")
    ordered = []
    for _ in range(epochs):
        keys = sorted(units)
        rng.shuffle(keys)
        for key in keys:
            rows = units[key][:]
            rng.shuffle(rows)
            ordered += rows
    return ordered


def train_teacher(model, pairs: list[ContrastivePair], args: ContrastiveConfig) -> Path:
    """Train ``model`` contrastively on ``pairs`` with the Trainer; save it (weights + processor) to ``args.output_dir``."""
    trainer = ContrastiveTrainer(
        model=model, args=args, train_dataset=pairs,
        data_collator=ContrastiveCollator(model.prepare_inputs, max_length=args.max_length),
    )
    trainer.train()
    model.eval()
    model.save_pretrained(args.output_dir)
    return Path(args.output_dir)
