"""The demo's English-only teacher: contrastive training on the synthetic world's English pairs."""

from __future__ import annotations

import random
from pathlib import Path

from modeling_xvlm2vec.instructions import STYLES
from xvlm2vec.testing.world import RELEASE_TASKS, World, candidate_prompt, query_prompt, task_examples
from xvlm2vec.training.contrastive import ContrastiveCollator, ContrastiveConfig, ContrastivePair, ContrastiveTrainer


def teacher_pairs(world: World, seed: int, lang: str = "en") -> list[ContrastivePair]:
    """(query, positive) pairs of every task on the training split, in ``lang`` only, styles drawn at random.

    Rows with the same positive content (whatever its style) share a ``positive_key``, so they are
    never each other's negatives.
    """
    rng = random.Random(f"{seed}-teacher-pairs")
    pairs = []
    for task in RELEASE_TASKS:
        for example in task_examples(world, "train", task, lang):
            style = rng.choice(STYLES)
            query_image = None if example.query_image is None else example.query_image.image
            if example.candidate_texts:
                positive = example.candidate_texts[0]
                pairs.append(
                    ContrastivePair(
                        query_prompt(example, style=style),
                        query_image,
                        candidate_prompt(task, lang, positive, style),
                        None,
                        f"text:{positive}",
                    )
                )
            else:
                picture = example.candidate_images[0]
                pairs.append(
                    ContrastivePair(
                        query_prompt(example, style=style),
                        query_image,
                        candidate_prompt(task, lang, None, style),
                        picture.image,
                        f"image:{picture.name}",
                    )
                )
    return pairs


def train_teacher(model, pairs: list[ContrastivePair], args: ContrastiveConfig) -> Path:
    """Train ``model`` contrastively on ``pairs`` with the Trainer; save it (weights + processor) to
    ``args.output_dir``.
    """
    trainer = ContrastiveTrainer(
        model=model,
        args=args,
        train_dataset=pairs,
        data_collator=ContrastiveCollator(model.prepare_inputs, max_length=args.max_length),
    )
    trainer.train()
    model.eval()
    model.save_pretrained(args.output_dir)
    return Path(args.output_dir)
