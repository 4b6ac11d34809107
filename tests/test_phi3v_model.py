"""Phi-3.5-V model: original parameter names, image-feature layout, processor/model agreement, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_xvlm2vec.backbone_phi3_v import Phi3VModel, check_placeholder_counts
from modeling_xvlm2vec.image_processing_phi3_v import Phi3VImageProcessor
from modeling_xvlm2vec.processing_phi3_v import Phi3VProcessor
from xvlm2vec.testing.tiny_phi3_v import build_tiny_phi3_tokenizer, tiny_phi3_v_config

# names and shapes of Phi-3.5-vision-instruct's checkpoint (Phi3VForCausalLM without "model." and lm_head),
# as functions of the widths: H decoder, I decoder MLP, V vocab, C CLIP, M CLIP MLP
ORIGINAL_NAMES = {
    "embed_tokens.weight": lambda H, I, V, C, M: (V, H),
    "vision_embed_tokens.glb_GN": lambda H, I, V, C, M: (1, 1, 4 * C),
    "vision_embed_tokens.sub_GN": lambda H, I, V, C, M: (1, 1, 1, 4 * C),
    "vision_embed_tokens.img_projection.0.weight": lambda H, I, V, C, M: (H, 4 * C),
    "vision_embed_tokens.img_projection.0.bias": lambda H, I, V, C, M: (H,),
    "vision_embed_tokens.img_projection.2.weight": lambda H, I, V, C, M: (H, H),
    "vision_embed_tokens.img_projection.2.bias": lambda H, I, V, C, M: (H,),
    "vision_embed_tokens.img_processor.vision_model.embeddings.class_embedding": lambda H, I, V, C, M: (C,),
    "vision_embed_tokens.img_processor.vision_model.embeddings.patch_embedding.weight": lambda H, I, V, C, M: (
        C,
        3,
        14,
        14,
    ),
    "vision_embed_tokens.img_processor.vision_model.embeddings.position_embedding.weight": lambda H, I, V, C, M: (
        577,
        C,
    ),
    "vision_embed_tokens.img_processor.vision_model.pre_layrnorm.weight": lambda H, I, V, C, M: (C,),
    "vision_embed_tokens.img_processor.vision_model.encoder.layers.0.self_attn.q_proj.weight": lambda H, I, V, C, M: (
        C,
        C,
    ),
    "vision_embed_tokens.img_processor.vision_model.encoder.layers.0.self_attn.out_proj.bias": lambda H, I, V, C, M: (
        C,
    ),
    "vision_embed_tokens.img_processor.vision_model.encoder.layers.1.mlp.fc1.weight": lambda H, I, V, C, M: (M, C),
    "vision_embed_tokens.img_processor.vision_model.encoder.layers.1.layer_norm2.bias": lambda H, I, V, C, M: (C,),
    "vision_embed_tokens.img_processor.vision_model.post_layernorm.weight": lambda H, I, V, C, M: (C,),
    "layers.0.self_attn.qkv_proj.weight": lambda H, I, V, C, M: (3 * H, H),
    "layers.0.self_attn.o_proj.weight": lambda H, I, V, C, M: (H, H),
    "layers.1.mlp.gate_up_proj.weight": lambda H, I, V, C, M: (2 * I, H),
    "layers.1.mlp.down_proj.weight": lambda H, I, V, C, M: (H, I),
    "layers.1.input_layernorm.weight": lambda H, I, V, C, M: (H,),
    "layers.1.post_attention_layernorm.weight": lambda H, I, V, C, M: (H,),
    "norm.weight": lambda H, I, V, C, M: (H,),
}


@pytest.fixture(scope="module")
def tiny():
    config = tiny_phi3_v_config()
    torch.manual_seed(0)
    model = Phi3VModel(config).eval()
    tokenizer = build_tiny_phi3_tokenizer()
    return model, tokenizer


def processor_for(tokenizer, num_crops: int) -> Phi3VProcessor:
    return Phi3VProcessor(image_processor=Phi3VImageProcessor(num_crops=num_crops), tokenizer=tokenizer)


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.RandomState(seed).randint(0, 255, (height, width, 3), dtype=np.uint8))


def test_parameter_names_and_shapes_are_the_originals(tiny):
    model, _ = tiny
    text, vision = model.config.text_config, model.config.vision_config
    widths = (text.hidden_size, text.intermediate_size, text.vocab_size, vision.hidden_size, vision.intermediate_size)
    state = model.state_dict()
    for name, shape in ORIGINAL_NAMES.items():
        assert name in state, name
        assert tuple(state[name].shape) == shape(*widths), name
    # nothing outside the original layout (rotary and CLIP position ids are non-persistent buffers)
    prefixes = (
        "embed_tokens.",
        "vision_embed_tokens.glb_GN",
        "vision_embed_tokens.sub_GN",
        "vision_embed_tokens.img_projection.",
        "vision_embed_tokens.img_processor.vision_model.",
        "layers.",
        "norm.",
    )
    assert all(key.startswith(prefixes) for key in state)


def test_image_feature_layout_separators(tiny):
    """Sub-image rows end with sub_GN, glb_GN sits between the sub-images and the global view (sub_glb)."""
    model, _ = tiny
    embedding = model.vision_embed_tokens
    pixel_values = torch.randn(1, 5, 3, 336, 336)
    with torch.no_grad():
        (features,) = embedding(pixel_values, torch.tensor([[336, 672]]))  # 1 x 2 crops
        sub = embedding.img_projection(embedding.sub_GN.reshape(1, -1))[0]
        glb = embedding.img_projection(embedding.glb_GN.reshape(1, -1))[0]
    grid = 12
    sub_rows, sub_width = grid, 2 * grid + 1
    assert len(features) == sub_rows * sub_width + 1 + grid * (grid + 1)
    separators = [row * sub_width + sub_width - 1 for row in range(sub_rows)]
    glb_at = sub_rows * sub_width
    separators += [glb_at + 1 + row * (grid + 1) + grid for row in range(grid)]
    # the projection is applied row-wise, so separators project exactly like the parameter alone (1e-6: float32)
    for position in separators:
        assert torch.allclose(features[position], sub, atol=1e-6), position
    assert torch.allclose(features[glb_at], glb, atol=1e-6)
    others = [p for p in range(len(features)) if p not in set(separators) | {glb_at}]
    assert not torch.allclose(features[others[0]], sub, atol=1e-3)


def test_global_view_comes_after_the_sub_images(tiny):
    """Changing only the global-view crop changes only the tokens after glb_GN."""
    model, _ = tiny
    pixel_values = torch.randn(1, 2, 3, 336, 336)
    changed = pixel_values.clone()
    changed[0, 0] += 1.0
    with torch.no_grad():
        (a,) = model.vision_embed_tokens(pixel_values, torch.tensor([[336, 336]]))
        (b,) = model.vision_embed_tokens(changed, torch.tensor([[336, 336]]))
    split = 12 * 13 + 1  # sub-image tokens + glb_GN
    assert torch.equal(a[:split], b[:split])
    assert not torch.allclose(a[split:], b[split:])


@pytest.mark.parametrize("num_crops", [1, 4, 16])
def test_processor_and_model_agree_on_counts(tiny, num_crops):
    """Portrait, landscape, tiny and larger-than-num_crops x 336 images: features == placeholders."""
    model, tokenizer = tiny
    processor = processor_for(tokenizer, num_crops)
    images = [noise(300, 700, 1), noise(500, 300, 2), noise(20, 30, 3), noise(2000, 1500, 4)]
    batch = processor(text=[f"<|image_1|>\nimage {i}" for i in range(4)], images=images, padding=True)
    assert batch["pixel_values"].shape == (4, num_crops + 1, 3, 336, 336)
    with torch.no_grad():
        features = model.vision_embed_tokens(batch["pixel_values"], batch["image_sizes"])
    assert [len(f) for f in features] == (batch["input_ids"] == 32044).sum(1).tolist()
    assert all(f.shape[1] == model.config.text_config.hidden_size for f in features)
    # a full forward over the padded batch works and keeps the length
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape == (*batch["input_ids"].shape, model.config.text_config.hidden_size)
    assert torch.isfinite(hidden).all()


def test_mismatch_between_processor_and_model_is_a_clear_error(tiny):
    model, tokenizer = tiny
    batch = processor_for(tokenizer, 4)(text=["<|image_1|>\nRepresent"], images=[noise(500, 300)])
    with torch.no_grad():
        wrong_size = dict(batch, image_sizes=torch.tensor([[336, 672]]))  # 1 x 2 crops instead of 2 x 2
        with pytest.raises(
            ValueError, match="row 0: input_ids hold 757 image placeholder tokens but images 0..0 give 457"
        ):
            model(**wrong_size)
        too_many = dict(batch, image_sizes=torch.tensor([[1008, 672]]))  # 6 crops > 4
        with pytest.raises(ValueError, match="image 0: image_sizes \\(1008, 672\\) needs 6 crops"):
            model(**too_many)
        with pytest.raises(ValueError, match="multiples of 336"):
            model(**dict(batch, image_sizes=torch.tensor([[500, 300]])))
        with pytest.raises(ValueError, match="but no pixel_values were given"):
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        with pytest.raises(ValueError, match="pixel_values must be"):
            model(**dict(batch, pixel_values=batch["pixel_values"][0]))
        with pytest.raises(ValueError, match="no KV cache"):
            model(**batch, use_cache=True)


def test_check_placeholder_counts_names_rows():
    check_placeholder_counts([5, 0, 7], [5, 3, 4])  # row 2 takes two images
    with pytest.raises(ValueError, match="row 1: input_ids hold 4"):
        check_placeholder_counts([5, 4], [5, 3])
    with pytest.raises(ValueError, match="1 of 2 images have no placeholder tokens"):
        check_placeholder_counts([5, 0], [5, 3])


def test_negative_placeholder_ids_of_the_original_processor_are_accepted(tiny):
    model, tokenizer = tiny
    batch = processor_for(tokenizer, 1)(text=["<|image_1|>\nRepresent"], images=[noise(60, 80)])
    original = batch["input_ids"].masked_fill(batch["input_ids"] == 32044, -1)
    with torch.no_grad():
        ours = model(**batch).last_hidden_state
        theirs = model(**dict(batch, input_ids=original)).last_hidden_state
    assert torch.equal(ours, theirs)


def test_left_and_right_padding_give_the_same_states(tiny):
    """Positions come from the attention mask (cumsum - 1): <= 1e-5 float32 between padding sides."""
    model, tokenizer = tiny
    texts = ["<|image_1|>\nRepresent the given image", "un petit chat noir"]
    images = [noise(100, 60)]
    processor = processor_for(tokenizer, 1)
    right = processor(text=texts, images=images, padding=True)
    left = processor(text=texts, images=images, padding=True, padding_side="left")
    with torch.no_grad():
        hr = model(**right).last_hidden_state
        hl = model(**left).last_hidden_state
    for row in range(2):
        n = int(right["attention_mask"][row].sum())
        assert (hr[row, :n] - hl[row, -n:]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_sliding_window_admits_the_window_plus_the_query_like_the_reference(attn_implementation):
    """Window w=2, one decoder layer: position q sees keys q-2, q-1, q (w + 1 keys), as the reference's
    transformers-4 mask (and flash-attn's window (w, w)) does. Found by perturbing one input position at a
    time and seeing which outputs move."""
    config = tiny_phi3_v_config(layers=1)
    config.text_config.sliding_window = 2
    config._attn_implementation = config.text_config._attn_implementation = attn_implementation
    torch.manual_seed(0)
    model = Phi3VModel(config).eval()
    length = 7
    embeds = torch.randn(1, length, config.text_config.hidden_size)
    with torch.no_grad():
        base = model(inputs_embeds=embeds).last_hidden_state
        sees = torch.zeros(length, length, dtype=torch.int)  # sees[q, k]: output q moves when input k does
        for key in range(length):
            moved = embeds.clone()
            moved[0, key] += 1.0
            changed = (model(inputs_embeds=moved).last_hidden_state - base).abs().amax(-1)[0] > 1e-6
            sees[:, key] = changed.int()
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0],
            [0, 1, 1, 1, 0, 0, 0],
            [0, 0, 1, 1, 1, 0, 0],
            [0, 0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 1, 1, 1],
        ],
        dtype=torch.int,
    )
    assert torch.equal(sees, expected)
    assert model.config.text_config.sliding_window == 2  # the saved config keeps the reference's w
