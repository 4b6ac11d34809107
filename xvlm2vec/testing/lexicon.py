"""The synthetic world's lexicon and grammar in en, it, es, fr, de and pt (a language outside the paper's set).

A scene is a few copies of one shape with a colour, a size and a side of the picture. This module
turns attribute values into phrases of each language (captions, class names, questions, answers)
with the agreement each language needs; `world.py` owns the scenes and the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from modeling_xvlm2vec.languages import LanguageRegistry, load_languages

# the world's languages beyond the shipped registry, as a user adds them: a language file
WORLD_LANGUAGES_FILE = Path(__file__).with_name("world_languages.json")
PAPER_LANGUAGES = ("en", "it", "es", "fr", "de")
# Portuguese is outside the paper's set: the demo distils and evaluates it like the others
LANGUAGES = (*PAPER_LANGUAGES, "pt")
SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
SIDES = ("left", "right")
COUNTS = (1, 2, 3)

# noun: (singular, plural, gender); gender matters for German endings only (all are masculine elsewhere)
_NOUNS: dict[str, dict[str, tuple[str, str, str]]] = {
    "en": {
        "circle": ("circle", "circles", "-"),
        "square": ("square", "squares", "-"),
        "triangle": ("triangle", "triangles", "-"),
        "diamond": ("diamond", "diamonds", "-"),
    },
    "it": {
        "circle": ("cerchio", "cerchi", "m"),
        "square": ("quadrato", "quadrati", "m"),
        "triangle": ("triangolo", "triangoli", "m"),
        "diamond": ("rombo", "rombi", "m"),
    },
    "es": {
        "circle": ("círculo", "círculos", "m"),
        "square": ("cuadrado", "cuadrados", "m"),
        "triangle": ("triángulo", "triángulos", "m"),
        "diamond": ("rombo", "rombos", "m"),
    },
    "fr": {
        "circle": ("cercle", "cercles", "m"),
        "square": ("carré", "carrés", "m"),
        "triangle": ("triangle", "triangles", "m"),
        "diamond": ("losange", "losanges", "m"),
    },
    "de": {
        "circle": ("Kreis", "Kreise", "m"),
        "square": ("Quadrat", "Quadrate", "n"),
        "triangle": ("Dreieck", "Dreiecke", "n"),
        "diamond": ("Raute", "Rauten", "f"),
    },
    "pt": {
        "circle": ("círculo", "círculos", "m"),
        "square": ("quadrado", "quadrados", "m"),
        "triangle": ("triângulo", "triângulos", "m"),
        "diamond": ("losango", "losangos", "m"),
    },
}

# adjective: (singular, plural) for en/it/es/fr; German gets its stem and declines it below
_COLOURS: dict[str, dict[str, tuple[str, str]]] = {
    "en": {c: (c, c) for c in COLOURS},
    "it": {
        "red": ("rosso", "rossi"),
        "green": ("verde", "verdi"),
        "blue": ("blu", "blu"),
        "yellow": ("giallo", "gialli"),
        "purple": ("viola", "viola"),
        "orange": ("arancione", "arancioni"),
    },
    "es": {
        "red": ("rojo", "rojos"),
        "green": ("verde", "verdes"),
        "blue": ("azul", "azules"),
        "yellow": ("amarillo", "amarillos"),
        "purple": ("morado", "morados"),
        "orange": ("naranja", "naranjas"),
    },
    "fr": {
        "red": ("rouge", "rouges"),
        "green": ("vert", "verts"),
        "blue": ("bleu", "bleus"),
        "yellow": ("jaune", "jaunes"),
        "purple": ("violet", "violets"),
        "orange": ("orange", "orange"),
    },
    "de": {
        "red": ("rot", ""),
        "green": ("grün", ""),
        "blue": ("blau", ""),
        "yellow": ("gelb", ""),
        "purple": ("lila", "invariable"),
        "orange": ("orange", "invariable"),
    },
    "pt": {
        "red": ("vermelho", "vermelhos"),
        "green": ("verde", "verdes"),
        "blue": ("azul", "azuis"),
        "yellow": ("amarelo", "amarelos"),
        "purple": ("roxo", "roxos"),
        "orange": ("laranja", "laranja"),
    },
}
_SIZES: dict[str, dict[str, tuple[str, str]]] = {
    "en": {"small": ("small", "small"), "large": ("large", "large")},
    "it": {"small": ("piccolo", "piccoli"), "large": ("grande", "grandi")},
    "es": {"small": ("pequeño", "pequeños"), "large": ("grande", "grandes")},
    "fr": {"small": ("petit", "petits"), "large": ("grand", "grands")},
    "de": {"small": ("klein", ""), "large": ("groß", "")},
    "pt": {"small": ("pequeno", "pequenos"), "large": ("grande", "grandes")},
}
_NUMBERS = {
    "en": ("one", "two", "three"),
    "it": ("un", "due", "tre"),
    "es": ("un", "dos", "tres"),
    "fr": ("un", "deux", "trois"),
    "de": ("ein", "zwei", "drei"),
    "pt": ("um", "dois", "três"),
}
_SIDE_PHRASES = {
    "en": {"left": "on the left", "right": "on the right"},
    "it": {"left": "a sinistra", "right": "a destra"},
    "es": {"left": "a la izquierda", "right": "a la derecha"},
    "fr": {"left": "à gauche", "right": "à droite"},
    "de": {"left": "links", "right": "rechts"},
    "pt": {"left": "à esquerda", "right": "à direita"},
}
_SIDE_WORDS = {
    "en": {"left": "left", "right": "right"},
    "it": {"left": "sinistra", "right": "destra"},
    "es": {"left": "izquierda", "right": "derecha"},
    "fr": {"left": "gauche", "right": "droite"},
    "de": {"left": "links", "right": "rechts"},
    "pt": {"left": "esquerda", "right": "direita"},
}
_GERMAN_ENDINGS = {"m": "er", "n": "es", "f": "e", "pl": "e"}  # strong declension (no article / after ein)

QUESTION_KINDS = ("colour", "shape", "count", "side", "size")
_QUESTIONS = {
    "en": {
        "colour": "What colour are the shapes?",
        "shape": "What shape are the objects?",
        "count": "How many objects are there?",
        "side": "On which side are the objects?",
        "size": "How big are the objects?",
    },
    "it": {
        "colour": "Di che colore sono le forme?",
        "shape": "Che forma hanno gli oggetti?",
        "count": "Quanti oggetti ci sono?",
        "side": "Da che lato sono gli oggetti?",
        "size": "Quanto sono grandi gli oggetti?",
    },
    "es": {
        "colour": "¿De qué color son las formas?",
        "shape": "¿Qué forma tienen los objetos?",
        "count": "¿Cuántos objetos hay?",
        "side": "¿En qué lado están los objetos?",
        "size": "¿Qué tamaño tienen los objetos?",
    },
    "fr": {
        "colour": "De quelle couleur sont les formes ?",
        "shape": "Quelle est la forme des objets ?",
        "count": "Combien d'objets y a-t-il ?",
        "side": "De quel côté sont les objets ?",
        "size": "Quelle est la taille des objets ?",
    },
    "de": {
        "colour": "Welche Farbe haben die Formen?",
        "shape": "Welche Form haben die Objekte?",
        "count": "Wie viele Objekte gibt es?",
        "side": "Auf welcher Seite sind die Objekte?",
        "size": "Wie groß sind die Objekte?",
    },
    "pt": {
        "colour": "De que cor são as formas?",
        "shape": "Que forma têm os objetos?",
        "count": "Quantos objetos há?",
        "side": "De que lado estão os objetos?",
        "size": "Qual é o tamanho dos objetos?",
    },
}


@lru_cache(maxsize=1)
def world_languages() -> LanguageRegistry:
    """The language registry of the world: the shipped languages plus :data:`WORLD_LANGUAGES_FILE`."""
    return load_languages(WORLD_LANGUAGES_FILE)


def world_instructions() -> dict[str, dict[str, dict[str, str]]]:
    """The instruction table of every language the world speaks (task -> side -> language -> text)."""
    return world_languages().instruction_table(LANGUAGES)


@dataclass(frozen=True)
class Scene:
    """One scene's attributes: ``count`` copies of a ``size`` ``colour`` ``shape`` on one ``side``."""

    shape: str
    colour: str
    size: str
    side: str
    count: int

    def key(self) -> str:
        """A stable identifier of the attribute combination, e.g. ``circle-red-small-left-2``."""
        return f"{self.shape}-{self.colour}-{self.size}-{self.side}-{self.count}"


def _check_lang(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; the world speaks {LANGUAGES}")


def _german_adjective(stem: str, invariable: bool, gender: str) -> str:
    return stem if invariable else stem + _GERMAN_ENDINGS[gender]


def _adjectives(lang: str, scene: Scene, plural: bool, gender: str) -> tuple[str, str]:
    """The size and colour adjectives agreeing with the noun."""
    size, colour = _SIZES[lang][scene.size], _COLOURS[lang][scene.colour]
    if lang == "de":
        form = "pl" if plural else gender
        return (_german_adjective(size[0], False, form), _german_adjective(colour[0], colour[1] == "invariable", form))
    index = 1 if plural else 0
    return size[index], colour[index]


def caption(scene: Scene, lang: str) -> str:
    """A one-sentence description of ``scene`` in ``lang`` (no final punctuation)."""
    _check_lang(lang)
    plural = scene.count > 1
    singular, plural_noun, gender = _NOUNS[lang][scene.shape]
    noun = plural_noun if plural else singular
    size, colour = _adjectives(lang, scene, plural, gender)
    number = _NUMBERS[lang][scene.count - 1]
    if lang == "de" and scene.count == 1:
        number = "eine" if gender == "f" else "ein"
    side = _SIDE_PHRASES[lang][scene.side]
    if lang == "en" or lang == "de":
        return f"{number} {size} {colour} {noun} {side}"
    if lang == "fr":
        return f"{number} {size} {noun} {colour} {side}"
    return f"{number} {noun} {colour} {size} {side}"  # it, es, pt


def class_name(shape: str, colour: str, lang: str) -> str:
    """The classification label of a ``colour`` ``shape`` in ``lang`` (e.g. ``cerchio rosso``)."""
    _check_lang(lang)
    singular, _, gender = _NOUNS[lang][shape]
    colour_forms = _COLOURS[lang][colour]
    if lang == "de":
        return f"{_german_adjective(colour_forms[0], colour_forms[1] == 'invariable', gender)} {singular}"
    if lang == "en":
        return f"{colour_forms[0]} {singular}"
    return f"{singular} {colour_forms[0]}"


def question(kind: str, lang: str) -> str:
    """The question of ``kind`` (one of QUESTION_KINDS) in ``lang``."""
    _check_lang(lang)
    if kind not in QUESTION_KINDS:
        raise ValueError(f"unknown question kind {kind!r}; expected one of {QUESTION_KINDS}")
    return _QUESTIONS[lang][kind]


def answer_options(kind: str, lang: str) -> dict[str, str]:
    """Every answer to a question of ``kind`` in ``lang``, keyed by attribute value."""
    _check_lang(lang)
    if kind == "colour":
        return {c: _COLOURS[lang][c][0] for c in COLOURS}
    if kind == "shape":
        return {s: _NOUNS[lang][s][0] for s in SHAPES}
    if kind == "count":
        words = {"en": ("one",), "it": ("uno",), "es": ("uno",), "fr": ("un",), "de": ("eins",), "pt": ("um",)}[lang]
        return {str(c): (words[0] if c == 1 else _NUMBERS[lang][c - 1]) for c in COUNTS}
    if kind == "side":
        return dict(_SIDE_WORDS[lang])
    if kind == "size":
        return {s: _SIZES[lang][s][0] for s in SIZES}
    raise ValueError(f"unknown question kind {kind!r}; expected one of {QUESTION_KINDS}")


def answer_key(scene: Scene, kind: str) -> str:
    """The attribute value that answers a question of ``kind`` about ``scene``."""
    values = {
        "colour": scene.colour,
        "shape": scene.shape,
        "count": str(scene.count),
        "side": scene.side,
        "size": scene.size,
    }
    if kind not in values:
        raise ValueError(f"unknown question kind {kind!r}; expected one of {QUESTION_KINDS}")
    return values[kind]


def vocabulary(lang: str) -> list[str]:
    """Every phrase of the lexicon in ``lang`` (used to train the demo tokenizer on the whole world)."""
    _check_lang(lang)
    phrases = [question(kind, lang) for kind in QUESTION_KINDS]
    phrases += [answer for kind in QUESTION_KINDS for answer in answer_options(kind, lang).values()]
    phrases += [class_name(shape, colour, lang) for shape in SHAPES for colour in COLOURS]
    phrases += [
        caption(Scene(shape, colour, size, side, count), lang)
        for shape in SHAPES
        for colour in COLOURS
        for size in SIZES
        for side in SIDES
        for count in COUNTS
    ]
    return phrases
