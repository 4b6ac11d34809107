"""The contrastive trainer of the demo's English teacher: the loss, the collator, a short training run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from xvlm2vec.demo.model import build_demo_model
from xvlm2vec.demo.teacher import teacher_pairs, train_teacher
from xvlm2vec.testing.world import WorldConfig, build_world
from xvlm2vec.training.contrastive import ContrastiveCollator, ContrastiveConfig, ContrastivePair, info_nce


def test_info_nce_matches_the_formula():
    query = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    positive = F.normalize(torch.tensor([[0.8, 0.6], [0.0, 1.0]]), dim=-1)
    t = 0.5
    s = query @ positive.T / t
    expected = -0.5 * (s[0, 0] - torch.logsumexp(s[0], 0) + s[1, 1] - torch.logsumexp(s[1], 0))
    assert torch.allclose(info_nce(query, positive, t), expected, atol=1e-6)  # float32 rounding only


def test_rows_sharing_a_positive_are_not_negatives():
    query = F.normalize(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    positive = torch.stack([query[0], query[0], query[2]])  # rows 0 and 1 have the same positive
    same = torch.tensor([[True, True, False], [True, True, False], [False, False, True]])
    masked = info_nce(query, positive, 0.1, same)
    unmasked = info_nce(query, positive, 0.1)
    assert masked < unmasked
    # with the duplicate masked, row 0 competes only with row 2's positive
    s = query @ positive.T / 0.1
    row0 = -(s[0, 0] - torch.logsumexp(s[0, [0, 2]], 0))
    row1 = -(s[1, 1] - torch.logsumexp(s[1, [1, 2]], 0))
    row2 = -(s[2, 2] - torch.logsumexp(s[2], 0))
    assert torch.allclose(masked, (row0 + row1 + row2) / 3, atol=1e-5)  # float32 rounding only


def test_temperature_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ContrastiveConfig(output_dir=str(tmp_path), temperature=0.0, use_cpu=True, report_to="none")


@pytest.fixture(scope="module")
def small():
    world = build_world(WorldConfig(seed=1, train_renders=1, vg_train_images=12, vg_test_images=10, candidates=4))
    pairs = teacher_pairs(world, seed=1)
    return world, pairs


def test_collator_refuses_more_tags_than_images(small):
    """The image tag is optional (added at the start when missing); two tags for one image still name the row."""
    _, pairs = small
    model, _ = build_demo_model(seed=0, hidden=32, layers=1, image_size=56)
    collator = ContrastiveCollator(model.prepare_inputs)
    bad = ContrastivePair(
        "<|image_1|> a caption <|image_1|>", pairs[0].query_image or pairs[1].query_image, "x", None, "k"
    )
    with pytest.raises(ValueError, match="row 1: the text has 2 image tags"):
        collator([pairs[2], bad])


def test_training_lowers_the_loss_and_is_deterministic(small, tmp_path):
    _, pairs = small
    batch = pairs[:16]

    def run(folder: str) -> tuple[float, float, dict]:
        torch.manual_seed(0)
        model, _ = build_demo_model(seed=0, hidden=32, layers=1, image_size=56)
        collator = ContrastiveCollator(model.prepare_inputs)
        inputs = collator(batch)

        def loss() -> float:
            with torch.no_grad():
                q = model(**inputs["query"], normalize=True).embeddings
                p = model(**inputs["positive"], normalize=True).embeddings
                return info_nce(q, p, 0.05, inputs["same_positive"]).item()

        before = loss()
        args = ContrastiveConfig(
            output_dir=folder,
            max_steps=15,
            learning_rate=3e-3,
            per_device_train_batch_size=16,
            seed=0,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            temperature=0.05,
            train_sampling_strategy="sequential",
        )
        train_teacher(model, batch, args)
        return before, loss(), {k: v.clone() for k, v in model.state_dict().items()}

    before, after, weights = run(str(tmp_path / "a"))
    assert (
        math.isfinite(after) and after < before - 0.5
    )  # 15 steps on one batch of 16 memorise it: ln 16 ~ 2.8 at start
    _, again, weights_again = run(str(tmp_path / "b"))
    assert again == after and all(torch.equal(weights[k], weights_again[k]) for k in weights)
    assert (tmp_path / "a" / "model.safetensors").is_file()


def test_the_demo_teacher_keeps_its_frozen_modules_and_trains_the_rest(small, tmp_path, monkeypatch):
    """`train_english_teacher` with the full demo's teacher settings (frozen patch embedding and vision blocks,
    AdamW beta2 0.95, one DataLoader worker), on a tiny model: the frozen weights stay bitwise at their initial
    values, every other weight moves, and the Trainer received the settings."""
    import dataclasses

    from xvlm2vec.demo import teacher
    from xvlm2vec.demo.pipeline import DemoConfig, train_english_teacher

    world, _ = small
    full = DemoConfig.full(seed=1)
    config = dataclasses.replace(
        full,
        world=dataclasses.replace(full.world, image_size=56),
        hidden=32,
        layers=1,
        teacher_epochs=1.0,
        teacher_batch_size=16,
        threads=1,
    )
    assert config.teacher_frozen == ("visual.patch_embed", "visual.blocks")
    initial, _ = build_demo_model(config.seed, config.hidden, config.layers, config.world.image_size)
    seen = {}
    train = teacher.train_teacher

    def spy(model, pairs, args):
        seen["args"] = args
        return train(model, pairs[:48], args)

    monkeypatch.setattr(teacher, "train_teacher", spy)
    folder = train_english_teacher(config, world, tmp_path)
    trained = type(initial).from_pretrained(folder)
    before, after = initial.state_dict(), trained.state_dict()
    frozen = [name for name in before if name.startswith(("model.visual.patch_embed.", "model.visual.blocks."))]
    assert frozen and all(torch.equal(before[name], after[name]) for name in frozen)
    moved = [name for name in before if name not in frozen and not torch.equal(before[name], after[name])]
    assert any(name.startswith("model.visual.merger.") for name in moved)
    assert any(name.startswith("model.language_model.layers.") for name in moved)
    args = seen["args"]
    assert (args.adam_beta2, args.dataloader_num_workers, args.dataloader_persistent_workers) == (0.95, 1, True)
    assert DemoConfig.quick().teacher_frozen == ()  # the quick demo trains every weight
