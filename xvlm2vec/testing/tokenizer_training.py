"""Byte-level BPE tokenizers trained offline on a small multilingual corpus (tiny models, the demo).

The corpus holds a few sample sentences in en/it/es/fr/de and every MMMEB instruction, so the tiny
models' tokenizers cover the protocol's texts without downloading anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from modeling_xvlm2vec.instructions import INSTRUCTIONS

SAMPLE_SENTENCES = (
    "A red circle on a white background. A small blue square next to a large green triangle.",
    "Un cerchio rosso su sfondo bianco. Un piccolo quadrato blu accanto a un grande triangolo verde.",
    "Un círculo rojo sobre fondo blanco. Un pequeño cuadrado azul junto a un gran triángulo verde.",
    "Un cercle rouge sur fond blanc. Un petit carré bleu à côté d'un grand triangle vert.",
    "Ein roter Kreis auf weißem Hintergrund. Ein kleines blaues Quadrat neben einem großen grünen Dreieck.",
    "Question: What colour is the ball? Answer: The ball is yellow.",
    "Domanda: Di che colore è la palla? Risposta: La palla è gialla.",
    "Pregunta: ¿De qué color es la pelota? Respuesta: La pelota es amarilla.",
    "Question : De quelle couleur est la balle ? Réponse : La balle est jaune.",
    "Frage: Welche Farbe hat der Ball? Antwort: Der Ball ist gelb. Größe, Straße, Ärger, Übung, Öl.",
    "àèéìíòóùúâêîôûëïüÿçñß ÀÈÉÌÒÙÂÊÎÔÛËÏÜÇÑ ¿¡«»",
)


def multilingual_corpus(extra: Iterable[str] = ()) -> list[str]:
    """Sentences the tiny tokenizers are trained on: samples, every MMMEB instruction, and ``extra``."""
    instructions = [text for sides in INSTRUCTIONS.values() for langs in sides.values() for text in langs.values()]
    return [*SAMPLE_SENTENCES, *instructions, *extra]


def train_tokenizer(
    special_tokens: list[str],
    vocab_size: int = 600,
    corpus: Iterable[str] | None = None,
    **tokenizer_kwargs: Any,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer offline; ``special_tokens`` get the first ids, in order."""
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus) if corpus is not None else multilingual_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **tokenizer_kwargs)
