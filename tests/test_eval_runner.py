"""The MMMEB runner on hand-made data with a deterministic embedder: exact scores, the protocol's
prompts, candidate deduplication, and cache reuse / invalidation."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from PIL import Image as PILImage

from dataset_builders.mmmeb import FEATURES
from modeling_xvlm2vec.instructions import INSTRUCTIONS
from xvlm2vec.evaluation.embedders import Embedder, l2_normalize
from xvlm2vec.evaluation.runner import RunConfig, Runner

COLOURS = {"red": (0, "rosso", "rossa"), "green": (1, "verde"), "blue": (2, "blu")}
RGB = {"red": (200, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 200)}


def image(colour: str, variant: int = 0) -> PILImage.Image:
    """A solid image of ``colour``; ``variant`` changes one pixel (different bytes, same colour)."""
    img = PILImage.new("RGB", (8, 8), RGB[colour])
    img.putpixel((0, 0), (variant, variant, variant))
    return img


def write_mmmeb_folder(root: Path, splits: dict[str, dict[str, list[dict]]]) -> Path:
    """Write ``{config: {language: rows}}`` in the MMMEB Hub layout (parquet + README ``configs:``)."""
    card = ["---", "configs:"]
    for config, by_lang in splits.items():
        card += [f"- config_name: {config}", "  data_files:"]
        for lang, rows in by_lang.items():
            columns = {name: [row.get(name) for row in rows] for name in FEATURES}
            columns["candidate_texts"] = [row.get("candidate_texts", []) for row in rows]
            columns["candidate_images"] = [row.get("candidate_images", []) for row in rows]
            columns["positive_index"] = [row.get("positive_index", 0) for row in rows]
            (root / config).mkdir(parents=True, exist_ok=True)
            Dataset.from_dict(columns, features=FEATURES).to_parquet(
                str(root / config / f"{lang}-00000-of-00001.parquet")
            )
            card += [f"  - split: {lang}", f"    path: {config}/{lang}-*.parquet"]
    (root / "README.md").write_text("\n".join([*card, "---", "", "Test MMMEB folder.", ""]))
    return root


def toy_splits() -> dict[str, dict[str, list[dict]]]:
    """Hand-made splits; the expected ranks of the colour embedder are written beside each row."""
    return {
        "toy_t2i": {
            "en": [
                {
                    "id": "a",
                    "query_text": "a red car",
                    "candidate_images": [image("red"), image("blue"), image("green")],
                },  # rank 1
                {"id": "b", "query_text": "a blue boat.", "candidate_images": [image("blue"), image("red")]},  # rank 1
                # two green candidates (different bytes): the tie ranks above the positive -> rank 2
                {
                    "id": "c",
                    "query_text": "a green tree",
                    "candidate_images": [image("green"), image("green", 1), image("red"), image("blue")],
                },
                # no colour word: every score is 0, a 3-way tie -> rank 3
                {"id": "d", "query_text": "a car", "candidate_images": [image("red"), image("blue"), image("green")]},
            ],
            "it": [
                {
                    "id": "a",
                    "query_text": "un'auto rossa",
                    "candidate_images": [image("red"), image("blue")],
                },  # rank 1
                # positive at index 1: blue query, red competitor -> rank 1
                {
                    "id": "b",
                    "query_text": "una barca blu",
                    "candidate_images": [image("red"), image("blue")],
                    "positive_index": 1,
                },
            ],
        },
        "toy_i2t": {
            "en": [
                {
                    "id": "a",
                    "query_image": image("red"),
                    "candidate_texts": ["a red car.", "a blue car", "a green car"],
                },  # rank 1
                {
                    "id": "b",
                    "query_image": image("blue"),
                    "candidate_texts": ["a red boat", "a blue boat"],
                    "positive_index": 1,
                },  # rank 1
                {
                    "id": "c",
                    "query_image": image("green"),
                    "candidate_texts": ["a blue tree", "a green tree", "a red tree"],
                },  # rank 3
            ],
        },
    }


# Hand-computed from the ranks above (en t2i: 1, 1, 2, 3; it t2i: 1, 1; en i2t: 1, 1, 3).
EXPECTED = {
    ("toy_t2i", "en"): {"precision@1": 0.5, "recall@5": 1.0, "mrr": (1 + 1 + 1 / 2 + 1 / 3) / 4},
    ("toy_t2i", "it"): {"precision@1": 1.0, "recall@5": 1.0, "mrr": 1.0},
    ("toy_i2t", "en"): {"precision@1": 2 / 3, "recall@5": 1.0, "mrr": (1 + 1 + 1 / 3) / 3},
}


class ColourEmbedder(Embedder):
    """Deterministic: a text is the one-hot of the colour word it names (zero if none), an image the
    one-hot of its dominant channel; a row with both is their normalised sum. Records every row."""

    kind = "custom"
    image_tag = "<|image_1|>"

    def __init__(
        self, fingerprint: str = "colour-v1", instructions: dict | None = None, uses_instructions: bool = True
    ):
        self._fingerprint = fingerprint
        self.name = f"colour:{fingerprint}"
        self.instructions = instructions or INSTRUCTIONS
        self.uses_instructions = uses_instructions
        self.seen: list[tuple[str | None, bool]] = []
        self.batch_sizes: list[int] = []

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def embed(self, texts, images, batch_size):
        self.batch_sizes.append(len(texts))
        vectors = np.zeros((len(texts), 3), dtype=np.float32)
        for row, (text, img) in enumerate(zip(texts, images)):
            self.seen.append((text, img is not None))
            words = (text or "").replace("'", " ").replace(".", " ").split()
            for word in words:
                for index, *names in [(v[0], k, *v[1:]) for k, v in COLOURS.items()]:
                    if word in names:
                        vectors[row, index] += 1
            if img is not None:
                vectors[row, int(np.argmax(np.asarray(img).reshape(-1, 3).mean(0)))] += 1
        return l2_normalize(vectors)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> Path:
    return write_mmmeb_folder(tmp_path_factory.mktemp("mmmeb"), toy_splits())


@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(RunConfig().metric).compute


def run(data: Path, embedder: Embedder, metric, cache_dir: Path | None, **kwargs) -> tuple[Runner, list[dict]]:
    runner = Runner(RunConfig(cache_dir=str(cache_dir) if cache_dir else None, batch_size=2, **kwargs), metric=metric)
    return runner, runner.evaluate(embedder, str(data))


def test_exact_scores_for_every_split_and_style(toy_data, metric):
    _, records = run(toy_data, ColourEmbedder(), metric, None)
    assert len(records) == 3 * 3  # 3 splits x 3 styles
    for record in records:
        expected = EXPECTED[(record["config"], record["language"])]
        assert record["precision@1"] == expected["precision@1"]
        assert record["recall@5"] == expected["recall@5"]
        # Same float expression, different summation order: 1e-12 is far below any rank change (>= 0.02).
        assert record["mrr"] == pytest.approx(expected["mrr"], abs=1e-12)
        assert record["dataset"] == "toy" and record["task"] == record["config"].split("_")[1]


def test_protocol_prompts_and_deduplication(toy_data, metric):
    embedder = ColourEmbedder()
    runner, _ = run(toy_data, embedder, metric, None, tasks=["t2i"], languages=["en"])
    texts = [text for text, _ in embedder.seen]
    t2i = "Find me an everyday image that matches the given caption: "
    # The whole query prompt is styled (released rule): plain drops the final ".", punct keeps the
    # caption's own "." (no second one), newline adds "\n"; a caption without "." gains one.
    assert t2i + "a blue boat" in texts and t2i + "a blue boat." in texts and t2i + "a blue boat.\n" in texts
    assert t2i + "a blue boat.." not in texts
    assert t2i + "a red car" in texts and t2i + "a red car." in texts and t2i + "a red car.\n" in texts
    # Image candidates carry their styled instruction and an image; identical bytes are embedded once
    # per style: red, blue, green and the second green = 4 rows per style. Queries: 4 per style.
    base = "<|image_1|>\nRepresent the given image"
    for styled in (base, base + ".", base + ".\n"):
        assert [(t, has_image) for t, has_image in embedder.seen if t == styled] == [(styled, True)] * 4
    assert runner.embedded_rows == {"candidates": 12, "queries": 12}
    assert max(embedder.batch_sizes) <= 2  # batch_size=2 is respected


def test_i2t_queries_and_text_candidates_are_styled_whole(toy_data, metric):
    embedder = ColourEmbedder()
    runner, _ = run(toy_data, embedder, metric, None, tasks=["toy_i2t"])
    # The i2t query is the instruction (+ image), styled: it gains "." / ".\n" -> 3 queries x 3 styles.
    assert runner.embedded_rows["queries"] == 9
    instruction = "<|image_1|>\nFind an image caption describing the given everyday image"
    assert {t for t, _ in embedder.seen if t.startswith(instruction)} == {
        instruction,
        instruction + ".",
        instruction + ".\n",
    }
    # Text candidates: plain keeps the caption as is, punct appends "." (even after a "."), newline is
    # punct again (no newline), so it reuses punct's vectors: 8 distinct captions x 2.
    assert runner.embedded_rows["candidates"] == 8 * 2
    assert ("a red car.", False) in embedder.seen and ("a red car..", False) in embedder.seen
    assert ("a blue car", False) in embedder.seen and ("a blue car.", False) in embedder.seen
    assert not any(t.endswith("\n") for t, _ in embedder.seen if not t.startswith(instruction))


def test_baseline_embedders_get_no_instructions_and_no_styles(toy_data, metric):
    embedder = ColourEmbedder(uses_instructions=False)
    _, records = run(toy_data, embedder, metric, None, tasks=["t2i"], languages=["en"])
    assert ("a red car", False) in embedder.seen and ("a blue boat.", False) in embedder.seen  # raw query text
    assert (None, True) in embedder.seen  # image candidates alone
    assert [r["style"] for r in records] == [None]  # one result per split
    assert records[0]["precision@1"] == 0.5


def test_cache_reused_and_invalidated(toy_data, tmp_path, metric):
    cache = tmp_path / "cache"
    first, records = run(toy_data, ColourEmbedder(), metric, cache)
    # Per style: t2i en 4 images, t2i it 2 (red, blue); i2t en 8 captions in plain and punct (newline = punct).
    assert first.embedded_rows["candidates"] == 4 * 3 + 2 * 3 + 8 * 2
    assert list(cache.rglob("*.safetensors"))

    again, records_again = run(toy_data, ColourEmbedder(), metric, cache)
    assert again.embedded_rows["candidates"] == 0
    assert records_again == records

    other_model, _ = run(toy_data, ColourEmbedder(fingerprint="colour-v2"), metric, cache)
    assert other_model.embedded_rows["candidates"] == first.embedded_rows["candidates"]

    instructions = copy.deepcopy(INSTRUCTIONS)
    instructions["t2i"]["candidate"]["en"] = "<|image_1|>\nShow the image"
    changed = ColourEmbedder(instructions=instructions)
    new_instruction, _ = run(toy_data, changed, metric, cache)
    # Only the English t2i image candidates use that instruction: 4 rows x 3 styles recomputed, nothing else.
    assert new_instruction.embedded_rows["candidates"] == 4 * 3
    assert ("<|image_1|>\nShow the image", True) in changed.seen


def test_changed_data_invalidates_cache(tmp_path, metric):
    splits = toy_splits()
    data = write_mmmeb_folder(tmp_path / "data", {"toy_i2t": splits["toy_i2t"]})
    cache = tmp_path / "cache"
    first, _ = run(data, ColourEmbedder(), metric, cache, styles=["plain"])
    assert first.embedded_rows["candidates"] == 8
    splits["toy_i2t"]["en"][0]["id"] = "renamed"  # same candidates, different data
    write_mmmeb_folder(tmp_path / "data", {"toy_i2t": splits["toy_i2t"]})
    second, _ = run(data, ColourEmbedder(), metric, cache, styles=["plain"])
    assert second.embedded_rows["candidates"] == 8
    assert len(list(cache.rglob("*.safetensors"))) == 2


def test_bad_requests_raise(toy_data, metric):
    with pytest.raises(ValueError, match=r"--tasks \['vqa'\] match no config"):
        run(toy_data, ColourEmbedder(), metric, None, tasks=["vqa"])
    with pytest.raises(ValueError, match="no split of"):
        run(toy_data, ColourEmbedder(), metric, None, languages=["xx"])
    with pytest.raises(ValueError, match="unknown style"):
        RunConfig(styles=["fancy"])


def test_bad_row_names_query(tmp_path, metric):
    rows = [{"id": "bad", "query_text": "a red car", "candidate_images": [image("red")], "positive_index": 3}]
    data = write_mmmeb_folder(tmp_path / "data", {"toy_t2i": {"en": rows}})
    with pytest.raises(ValueError, match=r"toy_t2i/en query 'bad': positive index 3 out of range"):
        run(data, ColourEmbedder(), metric, None)


def test_tie_counts_and_optimistic_rule(toy_data, metric):
    # toy_t2i/en: query "c" has its positive tied with a second green candidate at the top and
    # query "d" a three-way tie (all zero): 2 ties at the top, whatever the style.
    _, pessimistic = run(toy_data, ColourEmbedder(), metric, None, tasks=["t2i"], languages=["en"])
    assert [r["ties_at_top"] for r in pessimistic] == [2, 2, 2]
    assert [r["precision@1"] for r in pessimistic] == [0.5] * 3
    # Optimistic (the released GPU sort: a tied positive wins): c and d now rank 1 -> P@1 = 4/4.
    _, optimistic = run(toy_data, ColourEmbedder(), metric, None, tasks=["t2i"], languages=["en"], ties="optimistic")
    assert [r["ties_at_top"] for r in optimistic] == [2, 2, 2]
    assert [r["precision@1"] for r in optimistic] == [1.0] * 3
    assert optimistic[0]["mrr"] == 1.0
    with pytest.raises(ValueError, match="unknown tie rule"):
        RunConfig(ties="lucky")


def test_null_text_queries_are_skipped_and_counted(tmp_path, metric):
    rows = [
        {"id": "a", "query_text": "a red car", "candidate_images": [image("red"), image("blue")]},
        {"id": "b", "query_text": None, "candidate_images": [image("blue"), image("red")]},
    ]
    data = write_mmmeb_folder(tmp_path / "data", {"toy_t2i": {"en": rows}})
    embedder = ColourEmbedder()
    _, records = run(data, embedder, metric, None, styles=["plain"])
    assert (records[0]["num_queries"], records[0]["skipped_queries"]) == (1, 1)
    assert len([text for text, _ in embedder.seen if text.startswith("Find me")]) == 1
    # A baseline embeds a text query as its text: the null-text query is skipped there too.
    _, baseline = run(data, ColourEmbedder(uses_instructions=False), metric, None)
    assert (baseline[0]["num_queries"], baseline[0]["skipped_queries"], baseline[0]["style"]) == (1, 1, None)
    only_null = write_mmmeb_folder(tmp_path / "null", {"toy_t2i": {"en": rows[1:]}})
    with pytest.raises(ValueError, match="every query was skipped"):
        run(only_null, ColourEmbedder(), metric, None)
