"""MMMEB evaluation protocol: task instructions per language and text formatting styles.

Instructions are written with the canonical (Phi-3.5-V) image tag ``<|image_1|>``; a model maps
it to its own backbone's tag when it builds inputs. ``{text}`` marks where the query text goes;
an instruction without it is followed by the text after a space (or used alone).
"""

from __future__ import annotations

CANONICAL_IMAGE_TAG = "<|image_1|>"
LANGUAGES = ("en", "it", "es", "fr", "de")
STYLES = ("plain", "punct", "newline")

_TAG = CANONICAL_IMAGE_TAG + "\n"

INSTRUCTIONS: dict[str, dict[str, dict[str, str]]] = {
    "i2t": {
        "query": {
            "en": _TAG + "Find an image caption describing the given everyday image",
            "it": _TAG + "Trova una didascalia che descriva l'immagine di tutti i giorni",
            "es": _TAG + "Encuentra una leyenda que describa la imagen cotidiana dada",
            "fr": _TAG + "Trouvez une légende décrivant l'image donnée",
            "de": _TAG + "Finde eine Bildunterschrift, die das gegebene Alltagsbild beschreibt",
        },
    },
    "t2i": {
        "query": {
            "en": "Find me an everyday image that matches the given caption: {text}",
            "it": "Trovami un'immagine di tutti i giorni che corrisponda alla didascalia data: {text}",
            "es": "Encuentra una imagen cotidiana que coincida con la leyenda dada: {text}",
            "fr": "Trouvez-moi une image de tous les jours qui correspond à la légende donnée: {text}",
            "de": "Finde mir ein alltägliches Bild, das der gegebenen Beschriftung entspricht: {text}",
        },
        "candidate": {
            "en": _TAG + "Represent the given image",
            "it": _TAG + "Rappresenta l'immagine data",
            "es": _TAG + "Representa la imagen dada",
            "fr": _TAG + "Représentez l'image donnée",
            "de": _TAG + "Stelle das gegebene Bild dar",
        },
    },
    "vqa": {
        "query": {
            "en": _TAG + "Represent the given image with the following question: {text}",
            "it": _TAG + "Rappresenta l'immagine data con la seguente domanda: {text}",
            "es": _TAG + "Representa la imagen dada con la siguiente pregunta: {text}",
            "fr": _TAG + "Représentez l'image donnée avec la question suivante: {text}",
            "de": _TAG + "Stellen Sie das gegebene Bild mit der folgenden Frage dar: {text}",
        },
    },
    "vg": {
        "query": {
            "en": _TAG + 'Select the portion of the image that isolates the object labeled as "{text}"',
            "fr": _TAG + "Sélectionnez la partie de l'image qui isole l'objet étiqueté comme \"{text}\"",
        },
        "candidate": {
            "en": _TAG + "Represent the given cropped image of the object",
            "fr": _TAG + "Représentez l'image recadrée donnée de l'objet",
        },
    },
    "c": {
        "query": {
            "en": _TAG + "Represent the given image for classification",
            "it": _TAG + "Rappresenta l'immagine data per la classificazione",
            "es": _TAG + "Representa la imagen dada para clasificación",
            "fr": _TAG + "Représentez l'image donnée pour la classification",
            "de": _TAG + "Stellen Sie das gegebene Bild für die Klassifizierung dar",
        },
    },
}


def get_instruction(task: str, side: str, lang: str, table: dict | None = None) -> str | None:
    """Return the instruction for ``task`` (i2t, t2i, vqa, vg, c), ``side`` (query/candidate), ``lang``.

    Returns ``None`` when the protocol has no instruction for that side (text candidates are
    embedded alone). Raises ``ValueError`` for an unknown task or a language the task lacks.
    """
    table = INSTRUCTIONS if table is None else table
    if task not in table:
        raise ValueError(f"unknown MMMEB task {task!r}; expected one of {sorted(table)}")
    by_lang = table[task].get(side)
    if by_lang is None:
        return None
    if lang not in by_lang:
        raise ValueError(f"task {task!r} has no {side} instruction for language {lang!r} (has {sorted(by_lang)})")
    return by_lang[lang]


def format_text(text: str, style: str, question: bool = False) -> str:
    """Format ``text`` in one of the protocol's styles.

    ``plain``: strip, drop one trailing ``.`` or ``?``; ``punct``: end with ``.`` (``?`` when
    ``question``); ``newline``: as ``punct`` then a newline.
    """
    if style not in STYLES:
        raise ValueError(f"unknown formatting style {style!r}; expected one of {STYLES}")
    plain = text.strip()
    if plain.endswith((".", "?")):
        plain = plain[:-1].rstrip()
    if style == "plain":
        return plain
    punct = plain + ("?" if question else ".")
    return punct if style == "punct" else punct + "\n"


def compose_prompt(instruction: str | None, text: str | None) -> str:
    """Join an instruction and a text: fill ``{text}`` when present, else append after a space."""
    if instruction is None:
        return text or ""
    if "{text}" in instruction:
        return instruction.replace("{text}", text or "")
    return instruction if not text else f"{instruction} {text}"
