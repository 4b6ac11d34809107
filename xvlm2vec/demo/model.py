"""The demo's tiny model: the factory's Qwen2-VL XVLM2Vec with a tokenizer trained on the world's language.

The factory's tokenizer is trained on a few sample sentences, so the world's words would be cut into
characters shared by every language. Here the same factory tokenizer trainer sees every phrase of
the world in all its languages, with enough merges that each word is one token: non-English words
are then tokens the English-only teacher never trains (their embeddings stay at their random
initial values), which is what makes teacher-vs-student a fair test of distillation.
"""

from __future__ import annotations

from typing import Any

from xvlm2vec.testing.lexicon import LANGUAGES, vocabulary, world_instructions
from xvlm2vec.testing.tiny_model import build_tiny_model
from xvlm2vec.testing.tokenizer_training import multilingual_corpus, train_tokenizer


def world_tokenizer(old: Any, vocab_size: int) -> Any:
    """A BPE tokenizer trained on the world's phrases (all languages), with ``old``'s special tokens at the same
    ids.
    """
    added = sorted(old.get_added_vocab().items(), key=lambda item: item[1])
    special = [token for token, _ in added]
    if [index for _, index in added] != list(range(len(added))):
        raise ValueError(f"expected the special tokens at the first ids, got {added}")
    instructions = [
        text for sides in world_instructions().values() for by_lang in sides.values() for text in by_lang.values()
    ]
    corpus = multilingual_corpus([*(phrase for lang in LANGUAGES for phrase in vocabulary(lang)), *instructions])
    kwargs = {
        name: getattr(old, name) for name in ("pad_token", "eos_token", "bos_token", "unk_token") if getattr(old, name)
    }
    return train_tokenizer(special, vocab_size, corpus=corpus, **kwargs)


def build_demo_model(seed: int, hidden: int, layers: int, image_size: int, vocab_size: int = 1024) -> tuple[Any, Any]:
    """The tiny Qwen2-VL embedding model and processor, its tokenizer replaced by `world_tokenizer`; its
    config carries the instructions of every language the world speaks (Portuguese from the world's language file)."""
    model, processor = build_tiny_model(
        "qwen2_vl", seed=seed, hidden=hidden, layers=layers, image_size=image_size, vocab_size=vocab_size
    )
    rows = model.get_input_embeddings().num_embeddings  # the factory's tokenizer may stop below vocab_size
    tokenizer = world_tokenizer(processor.tokenizer, rows)
    processor.tokenizer = tokenizer
    model.set_processor(processor)
    model.config.instructions = world_instructions()
    return model, processor


def freeze_modules(model: Any, names: tuple[str, ...]) -> None:
    """Keep the submodules ``names`` of ``model.model`` (e.g. ``visual.blocks``) at their current weights: no
    gradients, so the optimiser never updates them."""
    for name in names:
        model.model.get_submodule(name).requires_grad_(False)
