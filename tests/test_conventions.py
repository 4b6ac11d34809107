"""Teacher conventions: `encode` under each published embedder's convention equals a reference written by hand.

Each reference writes the released prompt out as a literal string (from the released code cited in
docs/teachers.md), runs it through the processor alone (one row, no padding), runs transformers' own backbone the way
the released code does, pools the last token and L2-normalises. `encode` runs several rows of mixed modalities in
one padded batch, so the comparison also covers padding. Tolerance 1e-5: float32, the same weights, different
batch shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_xvlm2vec import XVLM2VecConfig
from modeling_xvlm2vec.conventions import CONVENTIONS, format_row, get_convention
from xvlm2vec.testing.tiny_model import build_tiny_model

VISION = "<|vision_start|><|image_pad|><|vision_end|>"
TEXTS = ["A red circle on a white background", "un cerchio rosso", "What colour is the shape?"]
ATOL = 1e-5


def chatml(system: str, content: str) -> str:
    """Qwen's ChatML prompt with the generation prompt, written out."""
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"


def last_normalised(hidden: torch.Tensor) -> np.ndarray:
    """The last position of a one-row [1, L, H] hidden state, L2-normalised."""
    return F.normalize(hidden[0, -1], dim=-1).numpy()


def multimodal_reference(model, processor, prompt: str, image) -> np.ndarray:
    """transformers' own base model forward (its own M-RoPE positions from the processor's outputs)."""
    inputs = processor(text=[prompt], images=[image] if image is not None else None, return_tensors="pt")
    with torch.no_grad():
        return last_normalised(model.model(**inputs).last_hidden_state)


def sequential_reference(model, processor, prompt: str, image) -> np.ndarray:
    """The released GME / VLM2Vec-V2 call: image features scattered into the token embeddings, then the decoder
    with ``position_ids=None`` (every token numbered in order)."""
    inputs = processor(text=[prompt], images=[image] if image is not None else None, return_tensors="pt")
    backbone = model.model
    with torch.no_grad():
        embeds = backbone.get_input_embeddings()(inputs["input_ids"])
        if image is not None:
            features = torch.cat(
                backbone.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output
            )
            mask = inputs["input_ids"] == backbone.config.image_token_id
            embeds[mask] = features
        hidden = backbone.language_model(
            inputs_embeds=embeds, attention_mask=inputs["attention_mask"], position_ids=None
        ).last_hidden_state
    return last_normalised(hidden)


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(backbone: str, convention: str):
        if (backbone, convention) not in cache:
            cache[backbone, convention] = build_tiny_model(backbone, seed=1, convention=convention)
        return cache[backbone, convention]

    return get


def test_qwen3_vl_embedding(models, images) -> None:
    """Qwen3-VL-Embedding: system = instruction (final '.' added), image before text, last token of the generation
    prompt, M-RoPE."""
    model, processor = models("qwen3_vl", "qwen3_vl_embedding")
    instruction = "Retrieve images or text relevant to the user's query"
    rows = [images[0], None, images[1]]
    ours = model.encode(TEXTS, images=rows, system_prompt=instruction, batch_size=3)
    # the MMEB-style tag-and-newline at the start of a row becomes the image part before the text part
    tagged = model.encode(["<|image_1|>\n" + TEXTS[0]], images=[images[0]], system_prompt=instruction)
    system = instruction + "."
    expected = [
        multimodal_reference(model, processor, chatml(system, VISION + TEXTS[0]), images[0]),
        multimodal_reference(model, processor, chatml(system, TEXTS[1]), None),
        multimodal_reference(model, processor, chatml(system, VISION + TEXTS[2]), images[1]),
    ]
    np.testing.assert_allclose(ours, np.stack(expected), atol=ATOL)
    np.testing.assert_allclose(tagged[0], expected[0], atol=ATOL)
    default = model.encode([TEXTS[1]])
    np.testing.assert_allclose(
        default[0],
        multimodal_reference(model, processor, chatml("Represent the user's input.", TEXTS[1]), None),
        atol=ATOL,
    )


def test_gme(models, images) -> None:
    """GME: ChatML with the instruction as system prompt, image before text, `<|endoftext|>` pooled, positions in
    order."""
    model, processor = models("qwen2_vl", "gme")
    instruction = "Find an image that matches the given text."
    rows = [images[2], None]
    ours = model.encode(TEXTS[:2], images=rows, system_prompt=instruction)
    expected = [
        sequential_reference(model, processor, chatml(instruction, VISION + TEXTS[0]) + "<|endoftext|>", images[2]),
        sequential_reference(model, processor, chatml(instruction, TEXTS[1]) + "<|endoftext|>", None),
    ]
    np.testing.assert_allclose(ours, np.stack(expected), atol=ATOL)
    candidate = model.encode(images=[images[3]])  # candidates get the default system prompt
    reference = sequential_reference(
        model, processor, chatml("You are a helpful assistant.", VISION) + "<|endoftext|>", images[3]
    )
    np.testing.assert_allclose(candidate[0], reference, atol=ATOL)
    # the positions are what tells this apart from the M-RoPE forward of the same prompt
    mrope = multimodal_reference(model, processor, chatml(instruction, VISION + TEXTS[0]) + "<|endoftext|>", images[2])
    assert np.abs(mrope - expected[0]).max() > 1e-4


def test_vlm2vec_v2(models, images) -> None:
    """VLM2Vec-V2: the raw prompt with a bare `<|image_pad|>` first, last token, positions in order."""
    model, processor = models("qwen2_vl", "vlm2vec_v2")
    instruction = "<|image_1|> Represent the given image with the following question: {text}"
    ours = model.encode(["What is in the image"], images=[images[0]], instruction=instruction)
    prompt = "<|image_pad|> Represent the given image with the following question: What is in the image"
    np.testing.assert_allclose(ours[0], sequential_reference(model, processor, prompt, images[0]), atol=ATOL)
    texts = model.encode(["A cat and a dog", "<|image_1|>\nRepresent the given image"], images=[None, images[1]])
    np.testing.assert_allclose(texts[0], sequential_reference(model, processor, "A cat and a dog", None), atol=ATOL)
    reference = sequential_reference(model, processor, "<|image_pad|>\nRepresent the given image", images[1])
    np.testing.assert_allclose(texts[1], reference, atol=ATOL)


@pytest.mark.parametrize("backbone", ["qwen2_vl", "qwen3_vl"])
def test_vlm2vec_default_is_the_raw_prompt_with_mrope(models, images, backbone) -> None:
    model, processor = models(backbone, "vlm2vec")
    ours = model.encode(["<|image_1|>\nA red circle", "a red circle"], images=[images[0], None])
    np.testing.assert_allclose(
        ours[0], multimodal_reference(model, processor, VISION + "\nA red circle", images[0]), atol=ATOL
    )
    np.testing.assert_allclose(ours[1], multimodal_reference(model, processor, "a red circle", None), atol=ATOL)


def test_conventions_are_checked() -> None:
    assert get_convention("gme").default_system == "You are a helpful assistant."
    with pytest.raises(ValueError, match="unknown convention 'e5'"):
        get_convention("e5")
    with pytest.raises(ValueError, match="applies to qwen3_vl backbones, not 'qwen2_vl'"):
        XVLM2VecConfig(backbone_config={"model_type": "qwen2_vl"}, convention="qwen3_vl_embedding")
    with pytest.raises(ValueError, match="has no system prompt"):
        format_row(CONVENTIONS["vlm2vec"], "a text", system="Find an image.")
    # the tag anywhere in the row moves to the front, a newline right after it goes with it
    assert format_row(CONVENTIONS["gme"], "caption\n<|image_1|>\nmore", "S").endswith(
        "user\n<|image_1|>caption\nmore<|im_end|>\n<|im_start|>assistant\n<|endoftext|>"
    )


def test_tiny_model_cli_writes_the_convention(images, tmp_path) -> None:
    """`xvlm2vec tiny-model --convention`: the folder keeps it and embeds as the model built in Python."""
    from modeling_xvlm2vec import XVLM2VecModel
    from xvlm2vec.cli import main

    folder = tmp_path / "m"
    argv = ["tiny-model", "--backbone", "qwen3_vl", "--convention", "qwen3_vl_embedding", "--output-dir", str(folder)]
    assert main(argv) == 0
    loaded = XVLM2VecModel.from_pretrained(folder)
    assert loaded.config.convention == "qwen3_vl_embedding" and (folder / "conventions.py").is_file()
    model, _ = build_tiny_model("qwen3_vl", seed=0, convention="qwen3_vl_embedding")
    rows = [images[0], None]
    # 1e-6: the same weights and processor, only serialisation in between
    np.testing.assert_allclose(loaded.encode(TEXTS[:2], images=rows), model.encode(TEXTS[:2], images=rows), atol=1e-6)


def test_training_loads_backbone_checkpoints_with_the_convention(tmp_path) -> None:
    """`train.py --convention`: a backbone checkpoint is wrapped with it; a wrong one is a one-line UsageError."""
    from transformers import AutoModelForImageTextToText

    from xvlm2vec.testing.tiny_model import BUILDERS, save_tiny_model
    from xvlm2vec_common.cli_errors import UsageError
    from xvlm2vec_common.model_folder import load_xvlm2vec_model

    config, processor = BUILDERS["qwen3_vl"](vocab_size=600, hidden=64, layers=2, image_size=56, intermediate=128)
    AutoModelForImageTextToText.from_config(config).save_pretrained(tmp_path / "qwen3")
    processor.save_pretrained(tmp_path / "qwen3")
    model = load_xvlm2vec_model(str(tmp_path / "qwen3"), "--teacher", convention="qwen3_vl_embedding")
    assert model.config.convention == "qwen3_vl_embedding" and model.convention.has_system
    with pytest.raises(UsageError, match="--convention: convention 'gme' applies to qwen2_vl backbones"):
        load_xvlm2vec_model(str(tmp_path / "qwen3"), "--teacher", convention="gme")
    folder = save_tiny_model("qwen2_vl", tmp_path / "student", convention="gme")
    assert load_xvlm2vec_model(str(folder), "--model_name_or_path", convention="gme").config.convention == "gme"
    with pytest.raises(UsageError, match="the model's convention is 'gme', not 'vlm2vec_v2'"):
        load_xvlm2vec_model(str(folder), "--model_name_or_path", convention="vlm2vec_v2")
