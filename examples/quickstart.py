"""Quick start: a tiny offline xVLM2Vec model embeds multilingual texts, images and text+image inputs.

Run: ``python examples/quickstart.py [--backbone qwen2_vl]``. Nothing is downloaded: the model is built
from a config with random weights, so the similarities show the API, not a trained model's quality.
"""

from __future__ import annotations

import argparse

from PIL import Image, ImageDraw

from modeling_xvlm2vec.instructions import get_instruction
from xvlm2vec.testing.tiny_model import BUILDERS, build_tiny_model


def shape_image(colour: str, ellipse: bool) -> Image.Image:
    """A 56x56 picture of one coloured circle or square."""
    image = Image.new("RGB", (56, 56), "white")
    draw = ImageDraw.Draw(image)
    (draw.ellipse if ellipse else draw.rectangle)((12, 12, 44, 44), fill=colour)
    return image


def main() -> None:
    """Embed a few inputs and print their cosine-similarity matrix."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="qwen2_vl", choices=sorted(BUILDERS))
    args = parser.parse_args()
    model, _ = build_tiny_model(args.backbone)
    labels, texts, images = [], [], []
    for lang, caption in [("en", "A red circle."), ("it", "Un cerchio rosso."), ("de", "Ein blaues Quadrat.")]:
        labels.append(f"text[{lang}]")
        texts.append(get_instruction("t2i", "query", lang).format(text=caption))
        images.append(None)
    for name, image in [("red circle", shape_image("red", True)), ("blue square", shape_image("blue", False))]:
        labels.append(f"image[{name}]")
        texts.append(get_instruction("t2i", "candidate", "en"))
        images.append(image)
    labels.append("image+text[vqa, fr]")
    texts.append(get_instruction("vqa", "query", "fr").format(text="De quelle couleur est la forme ?"))
    images.append(shape_image("red", True))
    embeddings = model.encode(texts, images=images, batch_size=4)
    similarity = model.similarity(embeddings, embeddings)
    print(f"{args.backbone}: {embeddings.shape[0]} inputs -> embeddings of width {embeddings.shape[1]}")
    width = max(map(len, labels))
    print(" " * width + "".join(f"{i:>8d}" for i in range(len(labels))))
    for i, (label, row) in enumerate(zip(labels, similarity)):
        print(f"{label:<{width}}" + "".join(f"{value:8.3f}" for value in row) + f"   ({i})")


if __name__ == "__main__":
    main()
