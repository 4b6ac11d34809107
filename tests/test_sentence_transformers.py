"""Saved model folders load natively with sentence-transformers, in a process where the project is not importable."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BACKBONES

pytest.importorskip("sentence_transformers")

from modeling_xvlm2vec.instructions import INSTRUCTIONS  # noqa: E402
from modeling_xvlm2vec.sentence_xvlm2vec import named_prompts  # noqa: E402

TEXTS = ["A red circle on a white background.", "Ein kleines blaues Quadrat"]
PAIR_TEXTS = ["a red circle", "un quadrato blu"]

#: Runs in a fresh interpreter: loads each folder with SentenceTransformer and embeds every input form.
ISOLATED = """
import json
from PIL import Image
from sentence_transformers import SentenceTransformer
folders, paths, texts, pair_texts = {args}
images = [Image.open(p).convert("RGB") for p in paths]
out = {{}}
for backbone, folder in folders.items():
    model = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
    out[backbone] = {{
        "text": model.encode(texts).tolist(),
        "image": model.encode(images).tolist(),
        "image_path": model.encode(paths[:1]).tolist(),
        "text_image": model.encode([{{"text": t, "image": i}} for t, i in zip(pair_texts, images)]).tolist(),
        "prompted": model.encode(texts[:1], prompt_name="t2i_query_it").tolist(),
        "prompted_image": model.encode(images, prompt_name="t2i_candidate_de").tolist(),
        "mixed": model.encode(
            [texts[0], images[0], {{"text": pair_texts[1], "image": images[1]}}], batch_size=2
        ).tolist(),
        "prompts": model.prompts,
        "similarity": model.similarity_fn_name,
        "dimension": model.get_sentence_embedding_dimension(),
    }}
    if backbone == "qwen2_vl":  # a folder saved by sentence-transformers itself loads again, unchanged
        model.save(folder + "-resaved")
        again = SentenceTransformer(folder + "-resaved", trust_remote_code=True, device="cpu")
        out[backbone]["resaved"] = again.encode(texts).tolist()
try:  # no code from the folder runs unless the user trusts it
    SentenceTransformer(folders["qwen2_vl"], device="cpu")
    out["untrusted"] = "loaded"
except ValueError as error:
    out["untrusted"] = str(error)
print(json.dumps(out))
"""


def test_sentence_transformers_equals_encode_for_every_backbone(tiny_models, images, tmp_path, run_isolated) -> None:
    paths = []
    for index, image in enumerate(images[:2]):
        paths.append(str(tmp_path / f"image{index}.png"))
        image.save(paths[-1])
    folders, expected = {}, {}
    it_query, de_candidate = INSTRUCTIONS["t2i"]["query"]["it"], INSTRUCTIONS["t2i"]["candidate"]["de"]
    for backbone in BACKBONES:
        model, _ = tiny_models(backbone)
        folder = tmp_path / backbone
        model.save_pretrained(folder)
        folders[backbone] = str(folder)
        expected[backbone] = {
            "text": model.encode(TEXTS),
            "image": model.encode(images=paths),
            "image_path": model.encode(images=paths[:1]),
            "text_image": model.encode(PAIR_TEXTS, images=paths),
            "prompted": model.encode(TEXTS[:1], instruction=it_query),
            "prompted_image": model.encode(images=paths, instruction=de_candidate),
            "mixed": model.encode([TEXTS[0], None, PAIR_TEXTS[1]], images=[None, paths[0], paths[1]]),
            "dimension": model.config.hidden_size,
        }
    args = repr((folders, paths, TEXTS, PAIR_TEXTS))
    result = run_isolated(ISOLATED.format(args=args), tmp_path)
    for backbone in BACKBONES:
        got, want = result[backbone], expected[backbone]
        for form in ("text", "image", "image_path", "text_image", "prompted", "prompted_image", "mixed"):
            # 1e-5: the same float32 model on the same rows; only batch composition (padding) may differ
            diff = np.abs(np.array(got[form]) - want[form]).max()
            assert diff <= 1e-5, f"{backbone} {form}: max abs diff {diff}"
        # sentence-transformers adds its own empty "query"/"document" prompts beside the saved ones
        assert {name: text for name, text in got["prompts"].items() if text} == named_prompts(INSTRUCTIONS)
        assert got["similarity"] == "cosine" and got["dimension"] == want["dimension"]
    np.testing.assert_allclose(np.array(result["qwen2_vl"]["resaved"]), expected["qwen2_vl"]["text"], atol=1e-6)
    assert "trust_remote_code" in result["untrusted"]


def test_saved_folder_declares_prompts_and_module(tiny_models, tmp_path) -> None:
    model, _ = tiny_models("llava_next")
    model.save_pretrained(tmp_path)
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert modules == [{"idx": 0, "name": "0", "path": "", "type": "sentence_xvlm2vec.XVLM2VecSentenceModule"}]
    assert (tmp_path / "sentence_xvlm2vec.py").is_file()
    config = json.loads((tmp_path / "config_sentence_transformers.json").read_text())
    assert config["prompts"]["t2i_query_it"] == INSTRUCTIONS["t2i"]["query"]["it"]
    assert config["prompts"]["vg_candidate_fr"] == INSTRUCTIONS["vg"]["candidate"]["fr"]
    assert len(config["prompts"]) == sum(len(by_lang) for sides in INSTRUCTIONS.values() for by_lang in sides.values())


def test_eval_recognises_saved_folders_as_xvlm2vec(tiny_models, tmp_path) -> None:
    """The saved folder has a modules.json, yet `xvlm2vec eval` must load it as xVLM2Vec (with instructions)."""
    from xvlm2vec.evaluation.embedders import XVLM2VecEmbedder
    from xvlm2vec.evaluation.registry import load_embedder

    model, _ = tiny_models("qwen2_vl")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "modules.json").is_file()
    embedder = load_embedder(str(tmp_path))
    assert isinstance(embedder, XVLM2VecEmbedder) and embedder.uses_instructions


@pytest.fixture(scope="module")
def qwen_folder(tiny_models, tmp_path_factory):
    """A tiny Qwen2-VL model and the folder it was saved to."""
    model, _ = tiny_models("qwen2_vl")
    folder = tmp_path_factory.mktemp("st") / "model"
    model.save_pretrained(folder)
    return model, folder


def test_empty_prompts_give_encode_embeddings(qwen_folder, images) -> None:
    """encode_query / encode_document without a prompt, and an empty prompt, equal encode (no leading space)."""
    from sentence_transformers import SentenceTransformer

    model, folder = qwen_folder
    st = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    want = model.encode(TEXTS)
    want_pairs = model.encode(PAIR_TEXTS, images=images[:2])
    pairs = [{"text": text, "image": image} for text, image in zip(PAIR_TEXTS, images)]
    got = {
        "encode": st.encode(TEXTS),
        "empty prompt": st.encode(TEXTS, prompt=""),
        "encode_query": st.encode_query(TEXTS),
        "encode_document": st.encode_document(TEXTS),
        "model empty instruction": model.encode(TEXTS, instruction=""),
    }
    for name, embeddings in got.items():
        # 1e-5: the same float32 model on the same prompts; only padding may differ between the two paths
        assert np.abs(embeddings - want).max() <= 1e-5, name
    assert np.abs(st.encode_query(pairs) - want_pairs).max() <= 1e-5


@pytest.mark.parametrize("saver", ["sentence_transformers", "auto_model"])
def test_folder_saved_right_after_loading_is_complete(qwen_folder, tmp_path, saver) -> None:
    """Saving before any encode (the processor not loaded yet) still writes the processor; the folder reloads."""
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    model, folder = qwen_folder
    out = tmp_path / "resaved"
    if saver == "sentence_transformers":
        SentenceTransformer(str(folder), trust_remote_code=True, device="cpu").save(str(out))
    else:
        AutoModel.from_pretrained(folder, trust_remote_code=True).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "modules.json", "model.safetensors"):
        assert (out / name).is_file(), f"{name} missing from {sorted(p.name for p in out.iterdir())}"
    want = model.encode(TEXTS)
    again = SentenceTransformer(str(out), trust_remote_code=True, device="cpu")
    assert np.abs(again.encode(TEXTS) - want).max() <= 1e-6  # the same weights and processor: equal
    reloaded = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert np.abs(reloaded.encode(TEXTS) - want).max() <= 1e-6


def test_max_seq_length_is_a_checked_cap(qwen_folder) -> None:
    """max_seq_length is honoured: a longer row is refused naming the limit (never cut), shorter rows unchanged."""
    from sentence_transformers import SentenceTransformer

    model, folder = qwen_folder
    st = SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    assert st.max_seq_length is None
    lengths = [len(st.tokenizer(text)["input_ids"]) for text in TEXTS]
    st.max_seq_length = max(lengths)
    assert np.abs(st.encode(TEXTS) - model.encode(TEXTS)).max() <= 1e-5
    st.max_seq_length = min(lengths)
    with pytest.raises(ValueError, match=rf"max_seq_length={min(lengths)}"):
        st.encode(TEXTS)
    for bad in (0, -3, 2.5, "8"):
        with pytest.raises(ValueError, match="max_seq_length"):
            st.max_seq_length = bad
