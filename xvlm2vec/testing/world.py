"""A synthetic multilingual multimodal world: rendered scenes and the five MMMEB task shapes.

Every attribute combination (shape, colour, size, side, count) is a scene; a seeded split puts each
combination in exactly one of train and test, so no test scene was ever seen whole in training
(every single attribute value was). Images are drawn with PIL; texts come from `lexicon.py`.

`build_world(config)` returns the in-memory world; :mod:`xvlm2vec.testing.fixtures` writes it in
the released file formats (docs/datasets.md) so the project's dataset builders turn it into
Hub-layout folders, exactly as they do the real data.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from dataset_builders.mmmeb import TASKS as MMMEB_TASKS
from dataset_builders.mmmeb import TaskSpec
from modeling_xvlm2vec import instructions as protocol

from .lexicon import (
    COLOURS,
    COUNTS,
    LANGUAGES,
    PAPER_LANGUAGES,
    QUESTION_KINDS,
    SHAPES,
    SIDES,
    SIZES,
    Scene,
    answer_key,
    answer_options,
    caption,
    class_name,
    question,
    world_instructions,
)

RGB = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 215, 20),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
}
# the MMMEB release file of each task shape (dataset tag, languages, field names) as the builder reads it
RELEASE_TASKS: dict[str, TaskSpec] = {spec.task: spec for spec in MMMEB_TASKS if spec.dataset != "xm"}


def task_languages(task: str) -> tuple[str, ...]:
    """The languages the world writes ``task`` in: the release's, plus the world's own languages (pt) where
    the release covers every paper language (i2t, t2i, c; vg and vqa stay en and fr, as released)."""
    released = RELEASE_TASKS[task].languages
    extra = tuple(lang for lang in LANGUAGES if lang not in PAPER_LANGUAGES)
    return (*released, *extra) if set(PAPER_LANGUAGES) <= set(released) else released


@dataclass
class WorldConfig:
    """Size and randomness of the synthetic world."""

    seed: int = 0
    image_size: int = 56
    test_fraction: float = 0.2
    train_renders: int = 2  # images drawn per training combination
    test_renders: int = 1  # images drawn per held-out combination
    candidates: int = 8  # candidates per query for i2t, t2i and vg (first one positive)
    vg_train_images: int = 160
    vg_test_images: int = 48

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.image_size < 28 or self.candidates < 2:
            raise ValueError(f"image_size must be >= 28 and candidates >= 2, got {self.image_size}, {self.candidates}")


@dataclass
class Picture:
    """A rendered image with a stable file name and the scene (or objects) it shows."""

    name: str
    image: Image.Image
    scene: Scene | None = None
    objects: list[tuple[str, str, tuple[int, int, int, int]]] = field(default_factory=list)  # (shape, colour, box)


@dataclass
class World:
    """Scenes rendered into train and test pictures, plus grounding pictures with object crops."""

    config: WorldConfig
    train: list[Picture]
    test: list[Picture]
    vg_train: list[Picture]
    vg_test: list[Picture]
    crops: dict[str, Picture]  # crop name -> crop picture (shape/colour in objects[0])


def all_scenes() -> list[Scene]:
    """Every attribute combination of the world."""
    return [Scene(*combo) for combo in itertools.product(SHAPES, COLOURS, SIZES, SIDES, COUNTS)]


def split_scenes(seed: int, test_fraction: float) -> tuple[list[Scene], list[Scene]]:
    """Split the combinations into disjoint train and test sets (every attribute value stays in train)."""
    scenes = all_scenes()
    rng = random.Random(seed)
    rng.shuffle(scenes)
    n_test = round(len(scenes) * test_fraction)
    test, train = scenes[:n_test], scenes[n_test:]
    for attribute in ("shape", "colour", "size", "side", "count"):
        missing = {getattr(s, attribute) for s in test} - {getattr(s, attribute) for s in train}
        if missing:
            raise ValueError(f"split leaves {attribute} values {sorted(map(str, missing))} out of training")
    return train, test


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill: tuple) -> None:
    left, top, right, bottom = box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, top), (right, bottom), (left, bottom)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, top), (right, cy), (cx, bottom), (left, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _colour(name: str, rng: random.Random) -> tuple[int, int, int]:
    return tuple(max(0, min(255, v + rng.randint(-12, 12))) for v in RGB[name])


def _background(size: int, rng: random.Random) -> Image.Image:
    shade = rng.randint(228, 250)
    return Image.new("RGB", (size, size), (shade, shade, shade))


def render_scene(scene: Scene, size: int, rng: random.Random) -> Image.Image:
    """Draw ``scene``: its copies stacked in one half of a ``size`` x ``size`` picture, lightly jittered."""
    image = _background(size, rng)
    draw = ImageDraw.Draw(image)
    slot = size / scene.count
    extent = min(size * (0.22 if scene.size == "small" else 0.4), slot * 0.92)
    half = size / 2
    for i in range(scene.count):
        cx = (half / 2 if scene.side == "left" else half + half / 2) + rng.uniform(-0.08, 0.08) * half
        cy = slot * (i + 0.5) + rng.uniform(-0.04, 0.04) * size
        box = (cx - extent / 2, cy - extent / 2, cx + extent / 2, cy + extent / 2)
        _draw_shape(draw, scene.shape, box, _colour(scene.colour, rng))
    return image


def render_grounding(objects: list[tuple[str, str]], size: int, rng: random.Random) -> tuple[Image.Image, list]:
    """Draw 2-3 objects in distinct cells of a 2x2 grid; return the picture and each object's box."""
    image = _background(size, rng)
    draw = ImageDraw.Draw(image)
    cells = rng.sample(range(4), len(objects))
    cell = size / 2
    placed = []
    for (shape, colour), index in zip(objects, cells):
        extent = cell * rng.uniform(0.6, 0.8)
        cx = cell * (index % 2 + 0.5) + rng.uniform(-0.06, 0.06) * cell
        cy = cell * (index // 2 + 0.5) + rng.uniform(-0.06, 0.06) * cell
        box = (cx - extent / 2, cy - extent / 2, cx + extent / 2, cy + extent / 2)
        _draw_shape(draw, shape, box, _colour(colour, rng))
        margin = 2
        pixel_box = (
            max(0, int(box[0]) - margin),
            max(0, int(box[1]) - margin),
            min(size, int(box[2]) + margin + 1),
            min(size, int(box[3]) + margin + 1),
        )
        placed.append((shape, colour, pixel_box))
    return image, placed


def _grounding_pictures(prefix: str, count: int, forbidden: set, size: int, rng: random.Random) -> list[Picture]:
    """Grounding pictures whose object sets avoid ``forbidden`` (and are added to it)."""
    pairs = list(itertools.product(SHAPES, COLOURS))
    pictures = []
    while len(pictures) < count:
        objects = rng.sample(pairs, rng.choice((2, 3)))
        combo = frozenset(objects)
        if combo in forbidden:
            continue
        forbidden.add(combo)
        image, placed = render_grounding(objects, size, rng)
        pictures.append(Picture(name=f"{prefix}{len(pictures):04d}", image=image, objects=placed))
    return pictures


def build_world(config: WorldConfig) -> World:
    """Render the whole world for ``config`` (deterministic in ``config.seed``)."""
    rng = random.Random(config.seed)
    train_scenes, test_scenes = split_scenes(config.seed, config.test_fraction)
    train = [
        Picture(f"train_{scene.key()}_{r}", render_scene(scene, config.image_size, rng), scene)
        for scene in train_scenes
        for r in range(config.train_renders)
    ]
    test = [
        Picture(f"test_{scene.key()}_{r}", render_scene(scene, config.image_size, rng), scene)
        for scene in test_scenes
        for r in range(config.test_renders)
    ]
    seen: set = set()
    vg_test = _grounding_pictures("vgtest_", config.vg_test_images, seen, config.image_size, rng)
    vg_train = _grounding_pictures("vgtrain_", config.vg_train_images, seen, config.image_size, rng)
    crops = {}
    for picture in vg_train + vg_test:
        for index, (shape, colour, box) in enumerate(picture.objects):
            name = f"{picture.name}_crop{index}"
            crops[name] = Picture(name, picture.image.crop(box), objects=[(shape, colour, box)])
    return World(config, train, test, vg_train, vg_test, crops)


# --------------------------------------------------------------------------- task rows
@dataclass
class Example:
    """One query with its candidates (the first is the positive), in one language."""

    task: str
    lang: str
    query_text: str | None
    query_image: Picture | None
    candidate_texts: list[str]
    candidate_images: list[Picture]


def _negatives(pictures: list[Picture], index: int, k: int, rng: random.Random, differ) -> list[Picture]:
    """``k`` other pictures that ``differ`` from ``pictures[index]`` (so no candidate is a second positive)."""
    pool = [p for j, p in enumerate(pictures) if j != index and differ(p, pictures[index])]
    return rng.sample(pool, k)


def _vg_label_crops(world: World, picture: Picture, target: int, k: int, rng: random.Random) -> list[Picture]:
    """The target crop, the picture's other crops, then crops of other pictures with other objects."""
    shape, colour, _ = picture.objects[target]
    own = [world.crops[f"{picture.name}_crop{i}"] for i in range(len(picture.objects))]
    positive, others = own[target], [c for i, c in enumerate(own) if i != target]
    pool = [
        c
        for c in world.crops.values()
        if not c.name.startswith(picture.name + "_")
        and c.objects[0][:2] != (shape, colour)
        and c.name.startswith(picture.name.split("_")[0])
    ]
    return [positive, *others, *rng.sample(pool, k - 1 - len(others))]


def task_examples(world: World, split: str, task: str, lang: str) -> list[Example]:
    """The queries of ``task`` in ``lang`` built from the ``split`` ("train" or "test") pictures."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = random.Random(f"{world.config.seed}-{split}-{task}")  # not the language: every language gets the same rows
    pictures = world.train if split == "train" else world.test
    k = world.config.candidates
    examples = []
    if task in ("i2t", "t2i"):
        for i, picture in enumerate(pictures):
            negatives = _negatives(pictures, i, k - 1, rng, lambda a, b: a.scene != b.scene)
            if task == "i2t":
                texts = [caption(p.scene, lang) for p in [picture, *negatives]]
                examples.append(Example(task, lang, None, picture, texts, []))
            else:
                examples.append(Example(task, lang, caption(picture.scene, lang), None, [], [picture, *negatives]))
    elif task == "c":
        classes = list(itertools.product(SHAPES, COLOURS))
        for picture in pictures:
            positive = (picture.scene.shape, picture.scene.colour)
            ordered = [positive, *[c for c in classes if c != positive]]
            examples.append(Example(task, lang, None, picture, [class_name(s, c, lang) for s, c in ordered], []))
    elif task == "vqa":
        for i, picture in enumerate(pictures):
            kind = QUESTION_KINDS[(i + rng.randrange(len(QUESTION_KINDS))) % len(QUESTION_KINDS)]
            options = answer_options(kind, lang)
            key = answer_key(picture.scene, kind)
            texts = [options[key], *[text for value, text in options.items() if value != key]]
            examples.append(Example(task, lang, question(kind, lang), picture, texts, []))
    elif task == "vg":
        for picture in world.vg_train if split == "train" else world.vg_test:
            target = rng.randrange(len(picture.objects))
            shape, colour, _ = picture.objects[target]
            crops = _vg_label_crops(world, picture, target, k, rng)
            examples.append(Example(task, lang, class_name(shape, colour, lang), picture, [], crops))
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(RELEASE_TASKS)}")
    return examples


# --------------------------------------------------------------------------- prompts
def query_prompt(example: Example, lang: str | None = None, style: str = "plain") -> str:
    """The query as the MMMEB protocol writes it: the language's instruction with the text, styled whole."""
    return protocol.query_prompt(example.task, lang or example.lang, example.query_text, style, world_instructions())


def candidate_prompt(task: str, lang: str, text: str | None, style: str = "plain") -> str:
    """A candidate as the protocol writes it: the text (styled), or the styled candidate instruction for an image."""
    return protocol.candidate_prompt(task, lang, text, style, world_instructions())
