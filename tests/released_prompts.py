"""Expected MMMEB prompts, written by hand from the released evaluation's rules (not computed).

``TEXTS`` holds the sample texts: for each (task, side) with a text, one per language, chosen to hit
the rules' corners (a caption already ending in ``.``, a trailing space, a French ``?`` after a
space, a grounding label ending in ``.`` inside the quotes, a text candidate ending in ``.``, one
with spaces around it). ``EXPECTED[(task, side, lang, style)]`` is the exact string the released
code embeds, with Phi-3.5-V's image tag ``<|image_1|>`` (other backbones: the same string with
their tag in its place). ``BASELINE`` is what the released dual-encoder baselines embed: (text or
None, whether an image is embedded).

Rules, from the released code: a query's whole prompt is styled after its text is filled in
(``plain``: strip, drop one final ``.``/``?``; ``punct``: unless it ends in ``.``/``?``, strip and
add ``.`` (``?`` for vqa); ``newline``: ``punct`` then ``\\n``). A candidate's template is styled
before its text is filled in (``{text}`` for texts: ``plain`` keeps the text as is, ``punct`` and
``newline`` add ``.``; image templates get ``.`` / ``.\\n``).
"""

TEXTS = {
    ("t2i", "query"): {
        "en": "A dog runs on the beach.",
        "it": "Un cane corre sulla spiaggia",
        "es": "Un perro corre en la playa. ",
        "fr": "Un chien court sur la plage",
        "de": "Ein Hund läuft am Strand.",
    },
    ("vqa", "query"): {
        "en": "What color is the car?",
        "it": "Di che colore è l'auto",
        "es": "¿De qué color es el coche?",
        "fr": "De quelle couleur est la voiture ?",
        "de": "Welche Farbe hat das Auto",
    },
    ("vg", "query"): {"en": "a dog", "fr": "un chien."},
    ("i2t", "candidate"): {
        "en": "A dog runs on the beach.",
        "it": "Un cane corre sulla spiaggia",
        "es": " Un perro corre en la playa ",
        "fr": "Un chien court sur la plage.",
        "de": "Ein Hund läuft am Strand",
    },
    ("vqa", "candidate"): {"en": "red", "it": "rosso.", "es": "rojo", "fr": "rouge", "de": "rot"},
    ("c", "candidate"): {
        "en": "golden retriever",
        "it": "golden retriever",
        "es": "perro perdiguero",
        "fr": "chien d'arrêt",
        "de": "Schäferhund",
    },
}

EXPECTED = {
    # ---------------------------------------------------------------- i2t query: instruction only
    ("i2t", "query", "en", "plain"): "<|image_1|>\nFind an image caption describing the given everyday image",
    ("i2t", "query", "en", "punct"): "<|image_1|>\nFind an image caption describing the given everyday image.",
    ("i2t", "query", "en", "newline"): "<|image_1|>\nFind an image caption describing the given everyday image.\n",
    ("i2t", "query", "it", "plain"): "<|image_1|>\nTrova una didascalia che descriva l'immagine di tutti i giorni",
    ("i2t", "query", "it", "punct"): "<|image_1|>\nTrova una didascalia che descriva l'immagine di tutti i giorni.",
    (
        "i2t",
        "query",
        "it",
        "newline",
    ): "<|image_1|>\nTrova una didascalia che descriva l'immagine di tutti i giorni.\n",
    ("i2t", "query", "es", "plain"): "<|image_1|>\nEncuentra una leyenda que describa la imagen cotidiana dada",
    ("i2t", "query", "es", "punct"): "<|image_1|>\nEncuentra una leyenda que describa la imagen cotidiana dada.",
    ("i2t", "query", "es", "newline"): "<|image_1|>\nEncuentra una leyenda que describa la imagen cotidiana dada.\n",
    ("i2t", "query", "fr", "plain"): "<|image_1|>\nTrouvez une légende décrivant l'image donnée",
    ("i2t", "query", "fr", "punct"): "<|image_1|>\nTrouvez une légende décrivant l'image donnée.",
    ("i2t", "query", "fr", "newline"): "<|image_1|>\nTrouvez une légende décrivant l'image donnée.\n",
    (
        "i2t",
        "query",
        "de",
        "plain",
    ): "<|image_1|>\nFinde eine Bildunterschrift, die das gegebene Alltagsbild beschreibt",
    (
        "i2t",
        "query",
        "de",
        "punct",
    ): "<|image_1|>\nFinde eine Bildunterschrift, die das gegebene Alltagsbild beschreibt.",
    (
        "i2t",
        "query",
        "de",
        "newline",
    ): "<|image_1|>\nFinde eine Bildunterschrift, die das gegebene Alltagsbild beschreibt.\n",
    # ---------------------------------------------------------------- i2t candidate: the caption, no instruction
    ("i2t", "candidate", "en", "plain"): "A dog runs on the beach.",
    ("i2t", "candidate", "en", "punct"): "A dog runs on the beach..",
    ("i2t", "candidate", "en", "newline"): "A dog runs on the beach..",
    ("i2t", "candidate", "it", "plain"): "Un cane corre sulla spiaggia",
    ("i2t", "candidate", "it", "punct"): "Un cane corre sulla spiaggia.",
    ("i2t", "candidate", "it", "newline"): "Un cane corre sulla spiaggia.",
    ("i2t", "candidate", "es", "plain"): " Un perro corre en la playa ",
    ("i2t", "candidate", "es", "punct"): " Un perro corre en la playa .",
    ("i2t", "candidate", "es", "newline"): " Un perro corre en la playa .",
    ("i2t", "candidate", "fr", "plain"): "Un chien court sur la plage.",
    ("i2t", "candidate", "fr", "punct"): "Un chien court sur la plage..",
    ("i2t", "candidate", "fr", "newline"): "Un chien court sur la plage..",
    ("i2t", "candidate", "de", "plain"): "Ein Hund läuft am Strand",
    ("i2t", "candidate", "de", "punct"): "Ein Hund läuft am Strand.",
    ("i2t", "candidate", "de", "newline"): "Ein Hund läuft am Strand.",
    # ---------------------------------------------------------------- t2i query: instruction + caption, styled whole
    (
        "t2i",
        "query",
        "en",
        "plain",
    ): "Find me an everyday image that matches the given caption: A dog runs on the beach",
    (
        "t2i",
        "query",
        "en",
        "punct",
    ): "Find me an everyday image that matches the given caption: A dog runs on the beach.",
    (
        "t2i",
        "query",
        "en",
        "newline",
    ): "Find me an everyday image that matches the given caption: A dog runs on the beach.\n",
    (
        "t2i",
        "query",
        "it",
        "plain",
    ): "Trovami un'immagine di tutti i giorni che corrisponda alla didascalia data: Un cane corre sulla spiaggia",
    (
        "t2i",
        "query",
        "it",
        "punct",
    ): "Trovami un'immagine di tutti i giorni che corrisponda alla didascalia data: Un cane corre sulla spiaggia.",
    (
        "t2i",
        "query",
        "it",
        "newline",
    ): "Trovami un'immagine di tutti i giorni che corrisponda alla didascalia data: Un cane corre sulla spiaggia.\n",
    (
        "t2i",
        "query",
        "es",
        "plain",
    ): "Encuentra una imagen cotidiana que coincida con la leyenda dada: Un perro corre en la playa",
    (
        "t2i",
        "query",
        "es",
        "punct",
    ): "Encuentra una imagen cotidiana que coincida con la leyenda dada: Un perro corre en la playa..",
    (
        "t2i",
        "query",
        "es",
        "newline",
    ): "Encuentra una imagen cotidiana que coincida con la leyenda dada: Un perro corre en la playa..\n",
    (
        "t2i",
        "query",
        "fr",
        "plain",
    ): "Trouvez-moi une image de tous les jours qui correspond à la légende donnée: Un chien court sur la plage",
    (
        "t2i",
        "query",
        "fr",
        "punct",
    ): "Trouvez-moi une image de tous les jours qui correspond à la légende donnée: Un chien court sur la plage.",
    (
        "t2i",
        "query",
        "fr",
        "newline",
    ): "Trouvez-moi une image de tous les jours qui correspond à la légende donnée: Un chien court sur la plage.\n",
    (
        "t2i",
        "query",
        "de",
        "plain",
    ): "Finde mir ein alltägliches Bild, das der gegebenen Beschriftung entspricht: Ein Hund läuft am Strand",
    (
        "t2i",
        "query",
        "de",
        "punct",
    ): "Finde mir ein alltägliches Bild, das der gegebenen Beschriftung entspricht: Ein Hund läuft am Strand.",
    (
        "t2i",
        "query",
        "de",
        "newline",
    ): "Finde mir ein alltägliches Bild, das der gegebenen Beschriftung entspricht: Ein Hund läuft am Strand.\n",
    # ---------------------------------------------------------------- t2i candidate: image instruction
    ("t2i", "candidate", "en", "plain"): "<|image_1|>\nRepresent the given image",
    ("t2i", "candidate", "en", "punct"): "<|image_1|>\nRepresent the given image.",
    ("t2i", "candidate", "en", "newline"): "<|image_1|>\nRepresent the given image.\n",
    ("t2i", "candidate", "it", "plain"): "<|image_1|>\nRappresenta l'immagine data",
    ("t2i", "candidate", "it", "punct"): "<|image_1|>\nRappresenta l'immagine data.",
    ("t2i", "candidate", "it", "newline"): "<|image_1|>\nRappresenta l'immagine data.\n",
    ("t2i", "candidate", "es", "plain"): "<|image_1|>\nRepresenta la imagen dada",
    ("t2i", "candidate", "es", "punct"): "<|image_1|>\nRepresenta la imagen dada.",
    ("t2i", "candidate", "es", "newline"): "<|image_1|>\nRepresenta la imagen dada.\n",
    ("t2i", "candidate", "fr", "plain"): "<|image_1|>\nReprésentez l'image donnée",
    ("t2i", "candidate", "fr", "punct"): "<|image_1|>\nReprésentez l'image donnée.",
    ("t2i", "candidate", "fr", "newline"): "<|image_1|>\nReprésentez l'image donnée.\n",
    ("t2i", "candidate", "de", "plain"): "<|image_1|>\nStelle das gegebene Bild dar",
    ("t2i", "candidate", "de", "punct"): "<|image_1|>\nStelle das gegebene Bild dar.",
    ("t2i", "candidate", "de", "newline"): "<|image_1|>\nStelle das gegebene Bild dar.\n",
    # ---------------------------------------------------------------- vqa query: last mark is "?"
    (
        "vqa",
        "query",
        "en",
        "plain",
    ): "<|image_1|>\nRepresent the given image with the following question: What color is the car",
    (
        "vqa",
        "query",
        "en",
        "punct",
    ): "<|image_1|>\nRepresent the given image with the following question: What color is the car?",
    (
        "vqa",
        "query",
        "en",
        "newline",
    ): "<|image_1|>\nRepresent the given image with the following question: What color is the car?\n",
    (
        "vqa",
        "query",
        "it",
        "plain",
    ): "<|image_1|>\nRappresenta l'immagine data con la seguente domanda: Di che colore è l'auto",
    (
        "vqa",
        "query",
        "it",
        "punct",
    ): "<|image_1|>\nRappresenta l'immagine data con la seguente domanda: Di che colore è l'auto?",
    (
        "vqa",
        "query",
        "it",
        "newline",
    ): "<|image_1|>\nRappresenta l'immagine data con la seguente domanda: Di che colore è l'auto?\n",
    (
        "vqa",
        "query",
        "es",
        "plain",
    ): "<|image_1|>\nRepresenta la imagen dada con la siguiente pregunta: ¿De qué color es el coche",
    (
        "vqa",
        "query",
        "es",
        "punct",
    ): "<|image_1|>\nRepresenta la imagen dada con la siguiente pregunta: ¿De qué color es el coche?",
    (
        "vqa",
        "query",
        "es",
        "newline",
    ): "<|image_1|>\nRepresenta la imagen dada con la siguiente pregunta: ¿De qué color es el coche?\n",
    (
        "vqa",
        "query",
        "fr",
        "plain",
    ): "<|image_1|>\nReprésentez l'image donnée avec la question suivante: De quelle couleur est la voiture ",
    (
        "vqa",
        "query",
        "fr",
        "punct",
    ): "<|image_1|>\nReprésentez l'image donnée avec la question suivante: De quelle couleur est la voiture ?",
    (
        "vqa",
        "query",
        "fr",
        "newline",
    ): "<|image_1|>\nReprésentez l'image donnée avec la question suivante: De quelle couleur est la voiture ?\n",
    (
        "vqa",
        "query",
        "de",
        "plain",
    ): "<|image_1|>\nStellen Sie das gegebene Bild mit der folgenden Frage dar: Welche Farbe hat das Auto",
    (
        "vqa",
        "query",
        "de",
        "punct",
    ): "<|image_1|>\nStellen Sie das gegebene Bild mit der folgenden Frage dar: Welche Farbe hat das Auto?",
    (
        "vqa",
        "query",
        "de",
        "newline",
    ): "<|image_1|>\nStellen Sie das gegebene Bild mit der folgenden Frage dar: Welche Farbe hat das Auto?\n",
    # ---------------------------------------------------------------- vqa candidate: the answer, no instruction
    ("vqa", "candidate", "en", "plain"): "red",
    ("vqa", "candidate", "en", "punct"): "red.",
    ("vqa", "candidate", "en", "newline"): "red.",
    ("vqa", "candidate", "it", "plain"): "rosso.",
    ("vqa", "candidate", "it", "punct"): "rosso..",
    ("vqa", "candidate", "it", "newline"): "rosso..",
    ("vqa", "candidate", "es", "plain"): "rojo",
    ("vqa", "candidate", "es", "punct"): "rojo.",
    ("vqa", "candidate", "es", "newline"): "rojo.",
    ("vqa", "candidate", "fr", "plain"): "rouge",
    ("vqa", "candidate", "fr", "punct"): "rouge.",
    ("vqa", "candidate", "fr", "newline"): "rouge.",
    ("vqa", "candidate", "de", "plain"): "rot",
    ("vqa", "candidate", "de", "punct"): "rot.",
    ("vqa", "candidate", "de", "newline"): "rot.",
    # ---------------------------------------------------------------- vg query (en, fr): marks go after the quote
    (
        "vg",
        "query",
        "en",
        "plain",
    ): '<|image_1|>\nSelect the portion of the image that isolates the object labeled as "a dog"',
    (
        "vg",
        "query",
        "en",
        "punct",
    ): '<|image_1|>\nSelect the portion of the image that isolates the object labeled as "a dog".',
    (
        "vg",
        "query",
        "en",
        "newline",
    ): '<|image_1|>\nSelect the portion of the image that isolates the object labeled as "a dog".\n',
    (
        "vg",
        "query",
        "fr",
        "plain",
    ): "<|image_1|>\nSélectionnez la partie de l'image qui isole l'objet étiqueté comme \"un chien.\"",
    (
        "vg",
        "query",
        "fr",
        "punct",
    ): "<|image_1|>\nSélectionnez la partie de l'image qui isole l'objet étiqueté comme \"un chien.\".",
    (
        "vg",
        "query",
        "fr",
        "newline",
    ): "<|image_1|>\nSélectionnez la partie de l'image qui isole l'objet étiqueté comme \"un chien.\".\n",
    # ---------------------------------------------------------------- vg candidate: crop instruction
    ("vg", "candidate", "en", "plain"): "<|image_1|>\nRepresent the given cropped image of the object",
    ("vg", "candidate", "en", "punct"): "<|image_1|>\nRepresent the given cropped image of the object.",
    ("vg", "candidate", "en", "newline"): "<|image_1|>\nRepresent the given cropped image of the object.\n",
    ("vg", "candidate", "fr", "plain"): "<|image_1|>\nReprésentez l'image recadrée donnée de l'objet",
    ("vg", "candidate", "fr", "punct"): "<|image_1|>\nReprésentez l'image recadrée donnée de l'objet.",
    ("vg", "candidate", "fr", "newline"): "<|image_1|>\nReprésentez l'image recadrée donnée de l'objet.\n",
    # ---------------------------------------------------------------- c query: instruction only
    ("c", "query", "en", "plain"): "<|image_1|>\nRepresent the given image for classification",
    ("c", "query", "en", "punct"): "<|image_1|>\nRepresent the given image for classification.",
    ("c", "query", "en", "newline"): "<|image_1|>\nRepresent the given image for classification.\n",
    ("c", "query", "it", "plain"): "<|image_1|>\nRappresenta l'immagine data per la classificazione",
    ("c", "query", "it", "punct"): "<|image_1|>\nRappresenta l'immagine data per la classificazione.",
    ("c", "query", "it", "newline"): "<|image_1|>\nRappresenta l'immagine data per la classificazione.\n",
    ("c", "query", "es", "plain"): "<|image_1|>\nRepresenta la imagen dada para clasificación",
    ("c", "query", "es", "punct"): "<|image_1|>\nRepresenta la imagen dada para clasificación.",
    ("c", "query", "es", "newline"): "<|image_1|>\nRepresenta la imagen dada para clasificación.\n",
    ("c", "query", "fr", "plain"): "<|image_1|>\nReprésentez l'image donnée pour la classification",
    ("c", "query", "fr", "punct"): "<|image_1|>\nReprésentez l'image donnée pour la classification.",
    ("c", "query", "fr", "newline"): "<|image_1|>\nReprésentez l'image donnée pour la classification.\n",
    ("c", "query", "de", "plain"): "<|image_1|>\nStellen Sie das gegebene Bild für die Klassifizierung dar",
    ("c", "query", "de", "punct"): "<|image_1|>\nStellen Sie das gegebene Bild für die Klassifizierung dar.",
    ("c", "query", "de", "newline"): "<|image_1|>\nStellen Sie das gegebene Bild für die Klassifizierung dar.\n",
    # ---------------------------------------------------------------- c candidate: the class name, no instruction
    ("c", "candidate", "en", "plain"): "golden retriever",
    ("c", "candidate", "en", "punct"): "golden retriever.",
    ("c", "candidate", "en", "newline"): "golden retriever.",
    ("c", "candidate", "it", "plain"): "golden retriever",
    ("c", "candidate", "it", "punct"): "golden retriever.",
    ("c", "candidate", "it", "newline"): "golden retriever.",
    ("c", "candidate", "es", "plain"): "perro perdiguero",
    ("c", "candidate", "es", "punct"): "perro perdiguero.",
    ("c", "candidate", "es", "newline"): "perro perdiguero.",
    ("c", "candidate", "fr", "plain"): "chien d'arrêt",
    ("c", "candidate", "fr", "punct"): "chien d'arrêt.",
    ("c", "candidate", "fr", "newline"): "chien d'arrêt.",
    ("c", "candidate", "de", "plain"): "Schäferhund",
    ("c", "candidate", "de", "punct"): "Schäferhund.",
    ("c", "candidate", "de", "newline"): "Schäferhund.",
}

# A few entries written out with Qwen2-VL's tag (the project maps <|image_1|> to each backbone's tag).
QWEN2_VL_TAG = "<|vision_start|><|image_pad|><|vision_end|>"
EXPECTED_QWEN2_VL_SAMPLES = {
    (
        "i2t",
        "query",
        "en",
        "newline",
    ): "<|vision_start|><|image_pad|><|vision_end|>\nFind an image caption describing the given everyday image.\n",
    (
        "vqa",
        "query",
        "fr",
        "plain",
    ): "<|vision_start|><|image_pad|><|vision_end|>\nReprésentez l'image donnée avec la question suivante: De quelle couleur est la voiture ",
    ("t2i", "candidate", "de", "punct"): "<|vision_start|><|image_pad|><|vision_end|>\nStelle das gegebene Bild dar.",
    (
        "vg",
        "query",
        "fr",
        "punct",
    ): "<|vision_start|><|image_pad|><|vision_end|>\nSélectionnez la partie de l'image qui isole l'objet étiqueté comme \"un chien.\".",
    (
        "t2i",
        "query",
        "es",
        "punct",
    ): "Encuentra una imagen cotidiana que coincida con la leyenda dada: Un perro corre en la playa..",
}

# Baselines (no instruction, no style): (text or None, whether the image is embedded).
BASELINE = {
    ("i2t", "query"): {lang: (None, True) for lang in ("en", "it", "es", "fr", "de")},
    ("t2i", "query"): {
        "en": ("A dog runs on the beach.", False),
        "it": ("Un cane corre sulla spiaggia", False),
        "es": ("Un perro corre en la playa. ", False),
        "fr": ("Un chien court sur la plage", False),
        "de": ("Ein Hund läuft am Strand.", False),
    },
    ("vqa", "query"): {lang: (None, True) for lang in ("en", "it", "es", "fr", "de")},
    ("vg", "query"): {"en": (None, True), "fr": (None, True)},
    ("c", "query"): {lang: (None, True) for lang in ("en", "it", "es", "fr", "de")},
    ("i2t", "candidate"): {
        "en": ("A dog runs on the beach.", False),
        "it": ("Un cane corre sulla spiaggia", False),
        "es": (" Un perro corre en la playa ", False),
        "fr": ("Un chien court sur la plage.", False),
        "de": ("Ein Hund läuft am Strand", False),
    },
    ("t2i", "candidate"): {lang: (None, True) for lang in ("en", "it", "es", "fr", "de")},
    ("vqa", "candidate"): {
        "en": ("red", False),
        "it": ("rosso.", False),
        "es": ("rojo", False),
        "fr": ("rouge", False),
        "de": ("rot", False),
    },
    ("vg", "candidate"): {"en": (None, True), "fr": (None, True)},
    ("c", "candidate"): {
        "en": ("image of golden retriever", False),
        "it": ("immagine di golden retriever", False),
        "es": ("imagen de perro perdiguero", False),
        "fr": ("image de chien d'arrêt", False),
        "de": ("Bild von Schäferhund", False),
    },
}

LANGUAGES_OF = {
    "i2t": ("en", "it", "es", "fr", "de"),
    "t2i": ("en", "it", "es", "fr", "de"),
    "vqa": ("en", "it", "es", "fr", "de"),
    "vg": ("en", "fr"),
    "c": ("en", "it", "es", "fr", "de"),
}


def write_release(root):
    """Write MMMEB release files (every task and language) whose first query uses ``TEXTS``.

    Each file holds query ``q0`` (the table's texts; its first candidate is the table's candidate
    text, a second candidate differs) and, in English t2i and vqa, a query ``q1`` whose text is
    null (the protocol skips it). Returns ``root``.
    """
    import json
    from pathlib import Path

    from PIL import Image

    from dataset_builders.mmmeb import TASKS, resolve_image_id

    root = Path(root)
    for spec in TASKS:
        for lang in spec.languages:
            ids = [f"{spec.task}_{name}" for name in ("query", "first", "second")]
            for index, image_id in enumerate(ids):
                path = root / resolve_image_id(image_id, spec.dataset)
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (16, 16), (40 * index, 200 - 60 * index, 90)).save(path)
            rows = []
            for query_id in ("q0", "q1"):
                if query_id == "q1" and not (lang == "en" and spec.task in ("t2i", "vqa")):
                    continue
                row = {"id": query_id}
                if spec.query_image_field:
                    row[spec.query_image_field] = ids[0]
                if spec.query_text_field:
                    row[spec.query_text_field] = TEXTS[(spec.task, "query")][lang] if query_id == "q0" else None
                if spec.image_candidates:
                    row[spec.candidate_field] = ids[1:]
                else:
                    row[spec.candidate_field] = [TEXTS[(spec.task, "candidate")][lang], "another candidate"]
                rows.append(row)
            path = root / spec.filename(lang)
            path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return root
