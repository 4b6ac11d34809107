"""Cross-lingual text-to-image retrieval with a saved model, loaded exactly as from the Hub.

    python -m xvlm2vec.demo.example --model demo_output/student --data demo_output/data/mmmeb

A gallery of held-out images (the positives of the first ``--images`` rows of ``xtd_t2i``) is
searched with each row's caption in every language; each line shows the query, the English
caption of the image ranked first, and whether it is the right one.
"""

from __future__ import annotations

import argparse
import sys

import datasets

from dataset_builders.hub_layout import load_split
from modeling_xvlm2vec.instructions import compose_prompt, get_instruction
from xvlm2vec_common.model_folder import load_xvlm2vec_model

CONFIG = "xtd_t2i"


def retrieve(model, data: str, languages: list[str], images: int) -> list[str]:
    """Lines of the example: per language, each query with its top-1 image's English caption and a mark."""
    english = load_split(data, CONFIG, "en").select(range(images))
    gallery = [row["candidate_images"][row["positive_index"]] for row in english]
    captions = english["query_text"]
    table = model.config.instructions  # every language the model was given instructions for
    lines = []
    for lang in languages:
        rows = load_split(data, CONFIG, lang).select(range(images))
        image_vectors = model.encode([get_instruction("t2i", "candidate", lang, table)] * len(gallery), gallery)
        queries = [compose_prompt(get_instruction("t2i", "query", lang, table), text) for text in rows["query_text"]]
        scores = model.similarity(model.encode(queries), image_vectors)
        best = scores.argmax(axis=1)
        hits = int((best == range(len(best))).sum())
        lines.append(f"[{lang}] {hits}/{len(best)} queries find their image")
        for i, (text, top) in enumerate(zip(rows["query_text"], best)):
            mark = "ok " if top == i else "MISS"
            lines.append(f"  {mark} {text!r:45} -> image of {captions[top]!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Load ``--model`` (its type checked from ``config.json`` first) and print the example."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder or Hub repo")
    parser.add_argument("--data", required=True, help="built MMMEB folder (needs the xtd_t2i config)")
    parser.add_argument(
        "--languages", nargs="+", default=None, help="query languages (default: every split of xtd_t2i)"
    )
    parser.add_argument("--images", type=int, default=6, help="gallery size (first rows of xtd_t2i)")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a backbone checkpoint that maps to its own code (auto_map) to run it; "
        "xVLM2Vec folders never need it",
    )
    args = parser.parse_args(argv)
    if args.images < 2:
        parser.error(f"--images must be >= 2, got {args.images}")
    model = load_xvlm2vec_model(args.model, "--model", args.trust_remote_code).eval()
    print(f"loaded {type(model).__name__} from {args.model} with AutoModel")
    languages = args.languages or sorted(
        datasets.get_dataset_split_names(args.data, CONFIG), key=lambda lang: (lang != "en", lang)
    )
    print("\n".join(retrieve(model, args.data, languages, args.images)))
    return 0


if __name__ == "__main__":
    from xvlm2vec_common.cli_errors import report_usage_errors

    sys.exit(report_usage_errors(main))
