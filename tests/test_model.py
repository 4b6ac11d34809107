"""XVLM2VecModel: embeddings, padding invariance, save/load in a fresh process, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BACKBONES

from modeling_xvlm2vec import XVLM2VecConfig, XVLM2VecModel
from modeling_xvlm2vec.instructions import get_instruction
from modeling_xvlm2vec.modeling_xvlm2vec import pool

TEXTS = [
    "A red circle on a white background.",
    "Un cerchio rosso",
    "Ein kleines blaues Quadrat neben einem großen Dreieck",
]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_encode_shapes_norm_and_dtype(backbone, tiny_models, images):
    model, _ = tiny_models(backbone)
    width = model.config.hidden_size
    text_only = model.encode(TEXTS)
    image_only = model.encode(images=images[:2])
    both = model.encode(
        ["a red square", "un quadrato"],
        images=images[:2],
        instruction="<|image_1|>\nRepresent the given image with the following question: {text}",
    )
    for out, rows in ((text_only, 3), (image_only, 2), (both, 2)):
        assert out.shape == (rows, width) and out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    raw = model.encode(TEXTS, normalize_embeddings=False, convert_to_tensor=True)
    assert isinstance(raw, torch.Tensor) and not torch.allclose(raw.norm(dim=1), torch.ones(3), atol=1e-3)
    # text+image differs from image alone: the text reaches the embedding
    assert np.abs(both - image_only).max() > 1e-3


@pytest.mark.parametrize("backbone", BACKBONES)
def test_encode_returns_input_order(backbone, tiny_models, images):
    """Length sorting inside encode must not permute the output (batch of 2 forces several batches)."""
    model, _ = tiny_models(backbone)
    texts = [TEXTS[0], None, TEXTS[1], "<|image_1|>\nshort"]
    imgs = [None, images[0], None, images[1]]
    together = model.encode(texts, images=imgs, batch_size=2)
    alone = np.stack([model.encode([t], images=[i], batch_size=1)[0] for t, i in zip(texts, imgs)])
    # 1e-5: float32 rounding across different batch compositions (padding invariance bound)
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_padding_invariance(backbone, padding_side, tiny_models, images):
    """An input embedded alone equals the same input inside a padded batch (max abs diff <= 1e-5, float32)."""
    model, _ = tiny_models(backbone, padding_side)
    rows = [
        ("<|image_1|>\nA red circle on a white background with a long caption", images[0]),
        ("short", None),
        ("<|image_1|>", images[1]),
        ("Un texte un peu plus long que les autres ici", None),
    ]
    texts, imgs = zip(*rows)
    with torch.no_grad():
        batch = model.prepare_inputs(list(texts), list(imgs))
        assert (batch["attention_mask"] == 0).any(), "the batch must actually contain padding"
        pad_col = 0 if padding_side == "left" else -1
        assert (batch["attention_mask"][:, pad_col] == 0).any()
        batched = model(**batch).embeddings
        for i, (text, image) in enumerate(rows):
            alone = model(**model.prepare_inputs([text], [image])).embeddings[0]
            assert (batched[i] - alone).abs().max().item() <= 1e-5


def test_pooling_last_and_mean_by_hand():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert torch.equal(pool(hidden, right, "last"), torch.stack([hidden[0, 1], hidden[1, 3]]))
    assert torch.equal(pool(hidden, left, "last"), torch.stack([hidden[0, 3], hidden[1, 3]]))
    assert torch.allclose(pool(hidden, right, "mean")[0], hidden[0, :2].mean(0))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_save_load_roundtrip_in_fresh_process(backbone, tiny_models, images, tmp_path, run_isolated):
    model, _ = tiny_models(backbone)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    weights = sorted(p.name for p in folder.iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".pth", ".ckpt"})
    assert weights and all(name.endswith(".safetensors") for name in weights)
    assert "auto_map" in json.loads((folder / "config.json").read_text())
    image_path = tmp_path / "image.png"
    images[1].save(image_path)
    texts = TEXTS[:2] + ["<|image_1|>\nRepresent the given image"]
    expected = model.encode(texts, images=[None, None, str(image_path)])
    code = f"""
import json, torch
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True)
processor = AutoProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
model.set_processor(processor)
emb = model.encode({texts!r}, images=[None, None, {str(image_path)!r}])
bf16 = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True, dtype=torch.bfloat16)
emb16 = bf16.encode({TEXTS[:2]!r})
print(json.dumps({{"emb": emb.tolist(), "bf16_dtype": str(next(bf16.parameters()).dtype), "emb16": emb16.tolist()}}))
"""
    result = run_isolated(code, tmp_path)
    # 1e-6: same weights, same float32 kernels, only serialisation in between
    np.testing.assert_allclose(np.array(result["emb"]), expected, atol=1e-6)
    assert result["bf16_dtype"] == "torch.bfloat16"
    # bfloat16 keeps ~3 significant digits; cosine with float32 embeddings stays high
    emb16 = np.array(result["emb16"])
    cos = (emb16 * expected[:2]).sum(1) / np.linalg.norm(emb16, axis=1)
    assert (cos > 0.95).all()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_bad_input_errors(backbone, tiny_models, images, tmp_path):
    model, _ = tiny_models(backbone)
    with pytest.raises(ValueError, match="no inputs"):
        model.encode()
    with pytest.raises(ValueError, match="same length"):
        model.encode(["a", "b"], images=[images[0]])
    with pytest.raises(ValueError, match="row 1: the text has an image tag but no image"):
        model.encode(["fine", "<|image_1|>\nRepresent the given image"])
    with pytest.raises(ValueError, match="row 1: the text has 2 image tags"):
        model.encode(["<|image_1|>\nfine", "<|image_1|> and <|image_1|>"], images=[images[0], images[1]])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="row 0: cannot read image .*broken.jpg"):
        model.encode(images=[str(broken)])
    with pytest.raises(ValueError, match="row 0: cannot read image .*missing.jpg"):
        model.encode(images=[str(tmp_path / "missing.jpg")])
    with pytest.raises(ValueError, match="row 0: empty text"):
        model.encode(["  "])
    with pytest.raises(ValueError, match="must both be \\[batch, length\\]"):
        model(input_ids=torch.ones(3, dtype=torch.long), attention_mask=torch.ones(3, dtype=torch.long))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_image_tag_is_optional(backbone, tiny_models, images):
    """An image row without a tag gets `<|image_1|>\\n` at the start, as VLM2Vec writes it; explicit tags still
    work.
    """
    model, _ = tiny_models(backbone)
    tag = model.config.image_tag
    implicit = model.encode(["A red circle", "Un cerchio"], images=images[:2])
    explicit = model.encode(["<|image_1|>\nA red circle", f"{tag}\nUn cerchio"], images=images[:2])
    # same prompts, same batch: identical up to float32 determinism
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    instruction = "Represent the given image with the following question: {text}"
    np.testing.assert_allclose(
        model.encode(["what colour?"], images=[images[2]], instruction=instruction),
        model.encode(["what colour?"], images=[images[2]], instruction="<|image_1|>\n" + instruction),
        atol=1e-6,
    )
    # the tag at the start is not the same prompt as the tag at the end: placement matters
    tag_last = model.encode(["A red circle\n<|image_1|>"], images=images[:1])
    assert np.abs(tag_last[0] - implicit[0]).max() > 1e-4


def test_unsupported_backbone_type():
    with pytest.raises(ValueError, match="unsupported backbone type 'bert'"):
        XVLM2VecConfig(backbone_config={"model_type": "bert"})


@pytest.mark.parametrize("backbone", BACKBONES)
def test_no_split_modules_and_gradient_checkpointing(backbone, tiny_models):
    model, _ = tiny_models(backbone)
    assert model._no_split_modules and all(isinstance(name, str) for name in model._no_split_modules)
    layer_classes = {type(m).__name__ for m in model.modules()}
    assert set(model._no_split_modules) <= layer_classes
    batch = model.prepare_inputs(TEXTS, [None] * 3)
    model.train()
    try:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        loss = model(**batch, normalize=False).embeddings.pow(2).sum()
        loss.backward()
        with_ckpt = model.get_input_embeddings().weight.grad.clone()
        model.zero_grad()
        model.activation_checkpointing_disable()
        model(**batch, normalize=False).embeddings.pow(2).sum().backward()
        # recomputation gives the same gradients up to float32 summation order
        assert torch.allclose(with_ckpt, model.get_input_embeddings().weight.grad, atol=1e-6)
        assert with_ckpt.abs().sum() > 0
    finally:
        model.zero_grad()
        model.eval()


def test_instructions_use_backbone_tag(tiny_models, images):
    """The canonical tag in a protocol instruction is mapped to the backbone's own tag."""
    model, processor = tiny_models("qwen2_vl")
    instruction = get_instruction("c", "query", "de")
    batch = model.prepare_inputs([instruction], [images[0]])
    ids = batch["input_ids"][0].tolist()
    assert processor.tokenizer.convert_tokens_to_ids("<|vision_start|>") in ids
    assert "<|image_1|>" not in processor.tokenizer.decode(ids)


@pytest.mark.parametrize("backbone", ["qwen2_vl", "qwen3_vl"])
def test_from_backbone_local_folder(backbone, tmp_path, images):
    """from_backbone on a native checkpoint folder (Hub layout) gives the backbone's own hidden states."""
    from transformers import AutoModelForImageTextToText

    from xvlm2vec.testing.tiny_model import build_tiny_model

    tiny, processor = build_tiny_model(backbone, seed=3)
    torch.manual_seed(3)
    native = AutoModelForImageTextToText.from_config(tiny.config.backbone_config).eval()
    folder = tmp_path / backbone
    native.save_pretrained(folder)
    processor.save_pretrained(folder)
    model = XVLM2VecModel.from_backbone(str(folder)).eval()
    assert type(model.model) is type(native.model) and type(model.processor) is type(processor)
    batch = model.prepare_inputs(["<|image_1|>\nA red circle"], [images[0]])
    with torch.no_grad():
        ours = model(**batch, normalize=False).embeddings
        ref = native.model(**batch).last_hidden_state[:, -1]
    assert torch.allclose(ours, ref, atol=1e-5)


def test_similarity_matrix():
    a = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    b = np.array([[1.0, 1.0]], dtype=np.float32)
    sim = XVLM2VecModel.similarity(a, b)
    assert sim.shape == (2, 1)
    np.testing.assert_allclose(sim[:, 0], [2**-0.5, 2**-0.5], atol=1e-6)


def test_tiny_model_cli_writes_loadable_folder(tmp_path):
    from xvlm2vec.cli import main

    assert main(["tiny-model", "--backbone", "llava_next", "--output-dir", str(tmp_path / "m")]) == 0
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"config.json", "model.safetensors", "modeling_xvlm2vec.py", "backbone_llava_next.py"} <= names
    assert Path(tmp_path / "m" / "processor_config.json").exists()
