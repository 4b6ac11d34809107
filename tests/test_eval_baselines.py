"""Dual-encoder baselines built tiny and random from configs (offline tokenizers): CLIP, SigLIP,
SigLIP2 through transformers, and a sentence-transformers text+image pair (multilingual CLIP's shape)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import processors

from xvlm2vec.evaluation.baselines import SentenceTransformerEmbedder, TransformersDualEncoder
from xvlm2vec.evaluation.registry import load_embedder
from xvlm2vec.testing.tokenizer_training import train_tokenizer

TEXT = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
# Float32 reductions over different padding/batch layouts differ by ~1e-7; 1e-5 leaves margin and
# is still far below the distance between embeddings of different inputs (checked below).
ATOL = 1e-5


def tokenizer(special: list[str], template: str, max_length: int, **kwargs):
    """An offline BPE tokenizer whose post-processor adds the model's special tokens."""
    tok = train_tokenizer(special, vocab_size=300, model_max_length=max_length, **kwargs)
    ids = [(token, tok.convert_tokens_to_ids(token)) for token in special]
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single=template, special_tokens=ids)
    return tok


def save_clip(path: Path) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok = tokenizer(
        ["<|endoftext|>", "<|startoftext|>"],
        "<|startoftext|> $A <|endoftext|>",
        32,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    text = dict(TEXT, max_position_embeddings=32, eos_token_id=0, bos_token_id=1, pad_token_id=0)
    torch.manual_seed(0)
    CLIPModel(
        CLIPConfig(text_config=text, vision_config=dict(VISION, image_size=32, patch_size=8), projection_dim=16)
    ).save_pretrained(path)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(path)
    return path


def save_siglip(path: Path, version: int) -> Path:
    from transformers import (
        Siglip2Config,
        Siglip2ImageProcessor,
        Siglip2Model,
        Siglip2Processor,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        SiglipProcessor,
    )

    tok = tokenizer(
        ["<pad>", "<eos>", "<bos>", "<unk>"],
        "$A <eos>",
        16,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )
    text = dict(TEXT, max_position_embeddings=16, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    torch.manual_seed(1)
    if version == 1:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=dict(VISION, image_size=32, patch_size=8)))
        processor = SiglipProcessor(
            image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok
        )
    else:
        model = Siglip2Model(
            Siglip2Config(text_config=text, vision_config=dict(VISION, patch_size=16, num_patches=16))
        )
        processor = Siglip2Processor(
            image_processor=Siglip2ImageProcessor(patch_size=16, max_num_patches=16), tokenizer=tok
        )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def save_sentence_transformers(root: Path, clip_dir: Path) -> tuple[Path, Path]:
    """A multilingual-CLIP-shaped pair: a BERT text student projected to CLIP's space, and CLIP for images."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling
    from transformers import BertConfig, BertModel

    bert = root / "bert"
    tok = tokenizer(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
        "[CLS] $A [SEP]",
        64,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )
    torch.manual_seed(2)
    BertModel(BertConfig(**TEXT, max_position_embeddings=64, pad_token_id=0)).save_pretrained(bert)
    tok.save_pretrained(bert)
    text = SentenceTransformer(
        modules=[Transformer(str(bert)), Pooling(32, "mean"), Dense(32, 16, activation_function=torch.nn.Identity())]
    )
    text.save(str(root / "st_text"))
    SentenceTransformer(modules=[Transformer(str(clip_dir))]).save(str(root / "st_clip"))
    return root / "st_text", root / "st_clip"


@pytest.fixture(scope="module")
def baseline_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("baselines")
    clip = save_clip(root / "clip")
    st_text, st_clip = save_sentence_transformers(root, clip)
    return {
        "clip": clip,
        "siglip": save_siglip(root / "siglip", 1),
        "siglip2": save_siglip(root / "siglip2", 2),
        "st_pair": Path(f"{st_text}+{st_clip}"),
        "st_single": st_clip,
        "bert": root / "bert",
    }


def pictures() -> list[Image.Image]:
    return [Image.new("RGB", size, colour) for size, colour in [((40, 30), (200, 20, 20)), ((32, 48), (20, 20, 200))]]


@pytest.mark.parametrize(
    ("which", "cls"),
    [
        ("clip", TransformersDualEncoder),
        ("siglip", TransformersDualEncoder),
        ("siglip2", TransformersDualEncoder),
        ("st_pair", SentenceTransformerEmbedder),
        ("st_single", SentenceTransformerEmbedder),
    ],
)
def test_baseline_rows(baseline_dirs, which, cls):
    embedder = load_embedder(str(baseline_dirs[which]))
    assert isinstance(embedder, cls) and not embedder.uses_instructions
    red, blue = pictures()
    texts = ["a red car", "un'auto rossa parcheggiata davanti alla casa", None, "a blue boat"]
    images = [None, None, red, blue]
    rows = embedder.embed(texts, images, batch_size=2)
    assert rows.dtype == np.float32 and rows.shape[0] == 4
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=ATOL)
    # Each row alone (no padding partner, batch of one) gives the same vector.
    for index in range(4):
        alone = embedder.embed([texts[index]], [images[index]], batch_size=1)
        np.testing.assert_allclose(alone[0], rows[index], atol=ATOL)
    # A text+image row is the normalised sum of the normalised text and image embeddings.
    text_only = embedder.embed(["a blue boat"], [None], 1)[0]
    image_only = embedder.embed([None], [blue], 1)[0]
    fused = (text_only + image_only) / np.linalg.norm(text_only + image_only)
    np.testing.assert_allclose(rows[3], fused, atol=ATOL)
    assert np.abs(rows[0] - rows[1]).max() > 100 * ATOL  # different inputs are told apart
    with pytest.raises(ValueError, match="row 1 has neither text nor image"):
        embedder.embed(["a", None], [None, None], 2)


def test_fingerprint_follows_weights(baseline_dirs):
    first = load_embedder(str(baseline_dirs["clip"]))
    second = load_embedder(str(baseline_dirs["clip"]))
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 64
    with torch.no_grad():
        next(second.model.parameters()).add_(1e-3)
    second._fingerprint = None
    assert second.fingerprint != first.fingerprint


def test_unsupported_model_type(baseline_dirs):
    with pytest.raises(ValueError, match="model type 'bert' is not supported"):
        load_embedder(str(baseline_dirs["bert"]))


def test_baseline_eval_embeds_the_released_inputs(baseline_dirs, released_table_mmmeb, tmp_path):
    """A baseline run with --save-prompts: one result per split (no styles), inputs as the released baselines."""
    import json

    from released_prompts import BASELINE

    from xvlm2vec.cli import main
    from xvlm2vec.evaluation.data import parse_config

    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "--model",
                str(baseline_dirs["clip"]),
                "--data",
                str(released_table_mmmeb),
                "--output-dir",
                str(out),
                "--save-prompts",
                "--no-cache",
            ]
        )
        == 0
    )
    seen = set()
    for line in map(json.loads, (out / "prompts.jsonl").read_text(encoding="utf-8").splitlines()):
        task = parse_config(line["config"])[1]
        assert line["style"] is None
        if line["side"] == "candidate" and line["candidate_index"] == 1:
            continue  # the untabled second candidate
        expected = BASELINE[(task, line["side"])][line["language"]]
        assert (line["prompt"], line["image_id"] is not None) == expected, line
        seen.add((task, line["side"], line["language"], line["row_id"]))
    # The null-text q1 is embedded (image alone) for vqa, skipped for t2i.
    assert ("vqa", "query", "en", "q1") in seen and ("t2i", "query", "en", "q1") not in seen
    document = json.loads((out / "results.json").read_text())
    records = {(r["config"], r["language"]): r for r in document["models"][0]["scores"]}
    assert len(records) == len(document["models"][0]["scores"]) == 29  # one per split
    assert (records[("maxm_v1_vqa", "en")]["num_queries"], records[("maxm_v1_vqa", "en")]["skipped_queries"]) == (2, 0)
    assert (records[("xtd_t2i", "en")]["num_queries"], records[("xtd_t2i", "en")]["skipped_queries"]) == (1, 1)
