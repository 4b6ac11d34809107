"""Image-loss pooling as released: the mean over the prefix through the last BOS, checked against
means computed by hand on a hand-made batch, and on the tiny Phi-3.5-V against slices of its hidden states."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modeling_xvlm2vec.modeling_xvlm2vec import prefix_mean

BOS, IMG, TXT, PAD = 1, 9, 5, 0


def test_prefix_mean_on_a_hand_made_batch() -> None:
    # hidden state of position p in row r is [10 r + p, -p]: every mean below is worked out by hand
    hidden = torch.tensor([[[10.0 * r + p, -float(p)] for p in range(6)] for r in range(4)])
    input_ids = torch.tensor(
        [
            [BOS, IMG, IMG, BOS, TXT, TXT],  # image row: BOS + 2 image tokens + BOS -> positions 0..3
            [BOS, TXT, TXT, PAD, PAD, PAD],  # text-only row, right padded: the first BOS alone -> position 0
            [PAD, BOS, IMG, BOS, TXT, TXT],  # image row, left padded: positions 1..3 (padding never counted)
            [BOS, TXT, BOS, PAD, PAD, PAD],  # last BOS wins even without an image: positions 0..2
        ]
    )
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    expected = torch.tensor(
        [
            [(0 + 1 + 2 + 3) / 4, -(0 + 1 + 2 + 3) / 4],
            [10.0, 0.0],
            [(21 + 22 + 23) / 3, -(1 + 2 + 3) / 3],
            [(30 + 31 + 32) / 3, -(0 + 1 + 2) / 3],
        ]
    )
    assert torch.equal(prefix_mean(hidden, input_ids, attention_mask, (BOS,)), expected)


def test_a_row_without_the_end_token_keeps_its_first_real_token() -> None:
    hidden = torch.arange(8.0).reshape(1, 4, 2)  # positions: [0,1] [2,3] [4,5] [6,7]
    pooled = prefix_mean(hidden, torch.tensor([[PAD, TXT, TXT, TXT]]), torch.tensor([[0, 1, 1, 1]]), (BOS,))
    assert torch.equal(pooled, torch.tensor([[2.0, 3.0]]))


def test_phi3v_image_terms_pool_bos_image_tokens_and_the_following_bos(tiny_models, images) -> None:
    model, processor = tiny_models("phi3_v")
    batch = model.prepare_inputs(["<|image_1|>\nA red square.", "A red square."], [images[0], None])
    with torch.no_grad():
        output = model(**batch, normalize=False, return_image_embeddings=True)
    ids, hidden = batch["input_ids"], output.last_hidden_state
    image_token = model.config.backbone_config.image_token_id
    count = int((ids[0] == image_token).sum())
    # the processor's layout, spelled out: BOS, the image tokens, BOS, then the text
    assert ids[0, 0] == BOS and bool((ids[0, 1 : 1 + count] == image_token).all()) and ids[0, 1 + count] == BOS
    assert int((ids[0] == BOS).sum()) == 2 and ids[1, 0] == BOS and int((ids[1] == BOS).sum()) == 1
    expected = torch.stack([hidden[0, : count + 2].mean(0), hidden[1, 0]])
    # float32 sums over <= 2 + count rows in another order: 1e-6 relative covers the rounding
    torch.testing.assert_close(output.image_embeddings, expected, rtol=1e-6, atol=1e-6)
    # the placeholder-only mean stays available as an explicit option (zeros for the text-only row)
    with torch.no_grad():
        variant = model(**batch, normalize=False, return_image_embeddings=True, image_pooling="image_tokens")
    torch.testing.assert_close(variant.image_embeddings[0], hidden[0, 1 : 1 + count].mean(0), rtol=1e-6, atol=1e-6)
    assert torch.equal(variant.image_embeddings[1], torch.zeros_like(hidden[1, 0]))
    with pytest.raises(ValueError, match="image_pooling"):
        model(**batch, return_image_embeddings=True, image_pooling="placeholders")


@pytest.mark.parametrize("backbone", ["qwen2_vl", "qwen3_vl"])
def test_qwen_vl_prefix_ends_at_the_vision_end_token(backbone, tiny_models, images) -> None:
    model, _ = tiny_models(backbone)
    batch = model.prepare_inputs(["<|image_1|>\nA red square."], [images[0]])
    with torch.no_grad():
        output = model(**batch, normalize=False, return_image_embeddings=True)
    end = int((batch["input_ids"][0] == model.config.backbone_config.vision_end_token_id).nonzero()[-1])
    assert end > 1
    torch.testing.assert_close(
        output.image_embeddings[0], output.last_hidden_state[0, : end + 1].mean(0), rtol=1e-6, atol=1e-6
    )


def test_skd_config_refuses_an_unknown_pooling(tmp_path) -> None:
    from xvlm2vec.training import SKDConfig

    assert SKDConfig(output_dir=str(tmp_path), use_cpu=True).image_pooling == "prefix"
    assert (
        SKDConfig(output_dir=str(tmp_path), use_cpu=True, image_pooling="image_tokens").image_pooling == "image_tokens"
    )
    with pytest.raises(ValueError, match="image_pooling"):
        SKDConfig(output_dir=str(tmp_path), use_cpu=True, image_pooling="placeholders")


def _parse(tmp_path, recipe: dict, *flags: str):
    """The training arguments of a tiny_cpu-based recipe with `recipe`'s extra keys and the command-line `flags`."""
    import yaml

    from xvlm2vec.training.script import parse_args

    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "recipes/tiny_cpu.yaml").read_text())
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**base, **recipe}))
    return parse_args(["--config", str(path), "--output_dir", str(tmp_path / "out"), *flags])[1]


def test_image_pooling_from_recipe_and_command_line(tmp_path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the new name never warns
        assert _parse(tmp_path, {"image_pooling": "image_tokens"}).image_pooling == "image_tokens"
        assert _parse(tmp_path, {}, "--image_pooling", "image_tokens").image_pooling == "image_tokens"
        assert _parse(tmp_path, {}).image_pooling == "prefix"


@pytest.mark.parametrize("where", ["recipe", "command_line"])
def test_old_name_image_loss_pooling_warns_and_maps_to_image_pooling(tmp_path, where) -> None:
    recipe, flags = (
        ({"image_loss_pooling": "image_tokens"}, ())
        if where == "recipe"
        else ({}, ("--image_loss_pooling", "image_tokens"))
    )
    with pytest.warns(
        FutureWarning, match="image_loss_pooling is renamed image_pooling; the old name goes in the next release"
    ):
        args = _parse(tmp_path, recipe, *flags)
    assert (args.image_pooling, args.image_loss_pooling) == ("image_tokens", None)


@pytest.mark.parametrize(
    ("recipe", "flags"),
    [
        ({"image_pooling": "prefix", "image_loss_pooling": "image_tokens"}, ()),
        ({"image_loss_pooling": "image_tokens"}, ("--image_pooling", "image_tokens")),
    ],
)
def test_giving_both_pooling_names_is_refused(tmp_path, recipe, flags) -> None:
    from xvlm2vec_common.cli_errors import UsageError

    with pytest.raises(UsageError, match="image_loss_pooling .* is the old name of image_pooling"):
        _parse(tmp_path, recipe, *flags)
