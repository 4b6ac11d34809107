"""Phi-3.5-V image processor and processor: HD transform, crop order, placeholder counts, padding, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_xvlm2vec.image_processing_phi3_v import Phi3VImageProcessor, hd_padded_size, num_image_tokens
from modeling_xvlm2vec.processing_phi3_v import Phi3VProcessor
from xvlm2vec.testing.tiny_phi3_v import build_tiny_phi3_tokenizer

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])

# (width, height) -> expected padded (width, height) per num_crops, worked out by hand from the HD rule:
# landscape ratio r = long/short; scale = largest s with s * ceil(s / r) <= num_crops; long side = 336 s,
# short side = int(336 s / r) padded up to a multiple of 336.
HD_CASES = [
    # landscape 500x300, r = 5/3.  n=1: s=1 -> 336 x 201 -> 336x336.  n=4: s=2 (2*ceil(1.2)=4; s=3 gives 6)
    # -> 672 x 403 -> 672x672.  n=16: s=5 (5*ceil(3)=15; s=6 gives 24) -> 1680 x 1008.
    ((500, 300), {1: (336, 336), 4: (672, 672), 16: (1680, 1008)}),
    # portrait 300x700, worked on 700x300, r = 7/3.  n=4: s=2 (s=3 gives 3*ceil(1.29)=6) -> 672 x 288 -> 672x336,
    # transposed back 336x672.  n=16: s=5 (5*ceil(2.14)=15; s=6 gives 18) -> 1680 x 720 -> 1680x1008 -> 1008x1680.
    ((300, 700), {1: (336, 336), 4: (336, 672), 16: (1008, 1680)}),
    # tiny 20x30, worked on 30x20, r = 1.5.  n=4: s=2 (2*ceil(1.33)=4) -> 672 x 448 -> 672x672.
    # n=16: s=4 (4*ceil(2.67)=12; s=5 gives 20) -> 1344 x 896 -> 1344x1008 -> transposed 1008x1344.
    ((20, 30), {1: (336, 336), 4: (672, 672), 16: (1008, 1344)}),
    # larger than num_crops x 336 on both sides, 2000x1500, r = 4/3.  n=4: s=2 (s=3 gives 9) -> 672 x 504 -> 672x672.
    # n=16: s=4 (4*ceil(3)=12 or 16, both fit; s=5 gives 20) -> 1344 x 1008.
    ((2000, 1500), {1: (336, 336), 4: (672, 672), 16: (1344, 1008)}),
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_phi3_tokenizer()


def processor_for(tokenizer, num_crops: int) -> Phi3VProcessor:
    return Phi3VProcessor(image_processor=Phi3VImageProcessor(num_crops=num_crops), tokenizer=tokenizer)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("num_crops", [1, 4, 16])
@pytest.mark.parametrize("size,expected", HD_CASES)
def test_hd_sizes_shapes_and_token_counts(size, expected, num_crops, tokenizer):
    width, height = size
    padded_w, padded_h = expected[num_crops]
    assert hd_padded_size(width, height, num_crops) == (padded_w, padded_h)
    out = Phi3VImageProcessor(num_crops=num_crops)(noise(width, height))
    assert out["pixel_values"].shape == (1, num_crops + 1, 3, 336, 336)
    assert out["image_sizes"].tolist() == [[padded_h, padded_w]]
    rows, cols = padded_h // 336, padded_w // 336
    assert rows * cols <= num_crops
    # the published formula of Phi-3.5-V
    assert out["num_img_tokens"].tolist() == [((rows * cols) + 1) * 144 + 1 + (rows + 1) * 12]
    # crops past rows * cols are zero padding, the used ones are not
    used = out["pixel_values"][0, : 1 + rows * cols]
    assert torch.count_nonzero(out["pixel_values"][0, 1 + rows * cols :]) == 0
    assert all(torch.count_nonzero(crop) > 0 for crop in used)
    # the processor writes exactly that many placeholders
    batch = processor_for(tokenizer, num_crops)(
        text="<|image_1|>\nRepresent the given image", images=noise(width, height)
    )
    assert int((batch["input_ids"] == 32044).sum()) == out["num_img_tokens"].item()


def test_num_image_tokens_formula_examples():
    assert num_image_tokens(336, 336) == 2 * 144 + 1 + 2 * 12  # 313: one crop + global view
    assert num_image_tokens(672, 672) == 5 * 144 + 1 + 3 * 12  # 757: VLM2Vec's 1344-wide images with 4 crops
    assert num_image_tokens(1008, 336) == 4 * 144 + 1 + 4 * 12


def test_crop_order_global_first_then_rows():
    """Quadrant colours of a square image come back as crops 1..4 in row-major order after the global view."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    image = Image.new("RGB", (672, 672))
    for index, colour in enumerate(colours):
        x, y = (index % 2) * 336, (index // 2) * 336
        image.paste(colour, (x, y, x + 336, y + 336))
    out = Phi3VImageProcessor(num_crops=4)(image)
    assert out["image_sizes"].tolist() == [[672, 672]]
    pixels = out["pixel_values"][0]
    for index, colour in enumerate(colours):
        expected = (torch.tensor(colour, dtype=torch.float32) / 255 - MEAN) / STD
        # exact crop colour (the image is already 672x672: no resampling), float32 normalisation rounding
        assert torch.allclose(pixels[1 + index].mean(dim=(1, 2)), expected, atol=1e-5)
    # the global view is a downscale of the whole image: its top-left pixel is the red quadrant's
    red = (torch.tensor(colours[0], dtype=torch.float32) / 255 - MEAN) / STD
    assert torch.allclose(pixels[0, :, 10, 10], red, atol=1e-4)


def test_landscape_padding_is_white_and_centred():
    """500x300 black image, 1 crop: resized to 336x201, padded with 67 white rows above and 68 below."""
    out = Phi3VImageProcessor(num_crops=1)(Image.new("RGB", (500, 300)))
    crop = out["pixel_values"][0, 1]
    white, black = (1 - MEAN) / STD, (0 - MEAN) / STD
    # exact white / black rows away from the resampled edge; 1e-5 for float32 normalisation
    assert torch.allclose(crop[:, 66, 100], white, atol=1e-5) and torch.allclose(crop[:, 0, 0], white, atol=1e-5)
    assert torch.allclose(crop[:, 270, 100], white, atol=1e-5)
    assert torch.allclose(crop[:, 68, 100], black, atol=1e-5) and torch.allclose(crop[:, 267, 100], black, atol=1e-5)


def test_portrait_is_padded_on_the_sides():
    """300x500 black image, 1 crop: 201 columns of image centred between white columns."""
    crop = Phi3VImageProcessor(num_crops=1)(Image.new("RGB", (300, 500)))["pixel_values"][0, 1]
    white, black = (1 - MEAN) / STD, (0 - MEAN) / STD
    assert torch.allclose(crop[:, 100, 10], white, atol=1e-5) and torch.allclose(crop[:, 100, 330], white, atol=1e-5)
    assert torch.allclose(crop[:, 100, 168], black, atol=1e-5)


def test_transparent_image_drops_alpha_like_the_released_stack():
    """A fully transparent black image stays black (alpha dropped), not white (no compositing)."""
    rgba = Image.new("RGBA", (336, 336), (0, 0, 0, 0))
    crop = Phi3VImageProcessor(num_crops=1)(rgba)["pixel_values"][0, 1]
    assert torch.allclose(crop[:, 5, 5], (0 - MEAN) / STD, atol=1e-5)


def _transparent_images() -> dict[str, Image.Image]:
    """RGBA, LA and a palette image with a transparent colour, all with varied alpha."""
    rng = np.random.RandomState(3)
    rgba = Image.fromarray(rng.randint(0, 255, (70, 90, 4), dtype=np.uint8), "RGBA")
    la = Image.fromarray(rng.randint(0, 255, (50, 40, 2), dtype=np.uint8), "LA")
    palette = Image.fromarray(rng.randint(0, 255, (60, 60, 3), dtype=np.uint8)).quantize(16)
    palette.info["transparency"] = 3
    return {"RGBA": rgba, "LA": la, "P": palette}


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_processor_on_a_transparent_image_equals_it_on_convert_rgb(tokenizer, mode):
    image = _transparent_images()[mode]
    assert image.mode == mode and (mode != "P" or "transparency" in image.info)
    processor = processor_for(tokenizer, 4)
    prompt = ["<|image_1|>\nRepresent the given image."]
    got = processor(text=prompt, images=[image])
    want = processor(text=prompt, images=[image.convert("RGB")])
    assert set(got) == set(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_do_convert_rgb_false_refuses_non_rgb_images():
    with pytest.raises(ValueError, match="RGBA"):
        Phi3VImageProcessor(num_crops=1, do_convert_rgb=False)(_transparent_images()["RGBA"])


def test_batch_padding_sides_and_pad_id(tokenizer):
    processor = processor_for(tokenizer, 1)
    texts = ["<|image_1|>\nRepresent the given image", "un chat"]
    right = processor(text=texts, images=[noise(60, 40)], padding=True)
    left = processor(text=texts, images=[noise(60, 40)], padding=True, padding_side="left")
    assert right["input_ids"].shape == left["input_ids"].shape
    short = int(right["attention_mask"][1].sum())
    assert right["input_ids"][1, short:].eq(32000).all() and right["attention_mask"][1, short:].eq(0).all()
    assert left["input_ids"][1, :-short].eq(32000).all()
    assert torch.equal(right["input_ids"][1, :short], left["input_ids"][1, -short:])
    # same tokens as the tokenizer alone for a text-only row: <s> first, no image placeholders
    assert right["input_ids"][1, :short].tolist() == tokenizer("un chat")["input_ids"]
    assert right["pixel_values"].shape == (1, 2, 3, 336, 336) and right["image_sizes"].tolist() == [[336, 336]]


def test_text_pieces_tokenised_separately_like_the_original(tokenizer):
    """Each piece around the tag is tokenised on its own (with <s>), as Phi-3.5-V's processor does."""
    batch = processor_for(tokenizer, 1)(text="Look: <|image_1|>\nRepresent", images=[noise(40, 40)])
    ids = batch["input_ids"][0].tolist()
    before, after = tokenizer("Look: ")["input_ids"], tokenizer("\nRepresent")["input_ids"]
    assert ids == before + [32044] * num_image_tokens(336, 336) + after


def test_two_images_in_one_prompt_and_across_rows(tokenizer):
    processor = processor_for(tokenizer, 1)
    batch = processor(
        text=["<|image_1|> and <|image_2|>", "<|image_1|>"],
        images=[noise(40, 40), noise(700, 300, 1), noise(30, 30, 2)],
        padding=True,
    )
    counts = (batch["input_ids"] == 32044).sum(1).tolist()
    assert counts == [2 * num_image_tokens(336, 336), num_image_tokens(336, 336)]
    assert batch["pixel_values"].shape[0] == 3


def test_truncation_keeps_text_but_never_cuts_images(tokenizer):
    processor = processor_for(tokenizer, 1)
    long_text = "un chat noir " * 20
    cut = processor(text=[long_text], truncation=True, max_length=8)
    assert cut["input_ids"].shape == (1, 8)
    with pytest.raises(ValueError, match="row 0: truncating to max_length=20 would cut its image placeholder tokens"):
        processor(text=["<|image_1|>"], images=[noise(40, 40)], truncation=True, max_length=20)


def test_bad_inputs_name_the_row(tokenizer):
    processor = processor_for(tokenizer, 4)
    with pytest.raises(ValueError, match="row 1: image tags must be <\\|image_1\\|>"):
        processor(text=["fine", "<|image_2|>"], images=[noise(40, 40)])
    with pytest.raises(ValueError, match="hold 1 image tags but 2 images"):
        processor(text=["<|image_1|>"], images=[noise(40, 40), noise(40, 40)])
    with pytest.raises(ValueError, match="hold 1 image tags but 0 images"):
        processor(text=["<|image_1|>"])
    with pytest.raises(ValueError, match="image 0: expected a PIL image"):
        processor(text=["<|image_1|>"], images=[np.zeros((4, 4, 3))])
    with pytest.raises(ValueError, match="row 0: text must be a string"):
        processor(text=[None])
    with pytest.raises(ValueError, match="num_crops must be >= 1"):
        Phi3VImageProcessor(num_crops=0)


def test_autoprocessor_from_saved_folder(tokenizer, tmp_path):
    from transformers import AutoProcessor

    processor = processor_for(tokenizer, 16)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(loaded).__name__ == "Phi3VProcessor" and loaded.image_processor.num_crops == 16
    image = noise(900, 500, 3)
    a = processor(text=["<|image_1|>\nRepresent the given image", "ciao"], images=[image], padding=True)
    b = loaded(text=["<|image_1|>\nRepresent the given image", "ciao"], images=[image], padding=True)
    assert all(torch.equal(a[key], b[key]) for key in a)
