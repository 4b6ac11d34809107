"""Tiny random T5 translation models (MADLAD-400's architecture at toy size) for the translation tests and
benchmarks: seeded, built from configs, with a word-level tokenizer trained offline on MMEB-train fixture texts.

The vocabulary holds no target-language marker, so no output parses: every row ends as a reject carrying
the model's output. ``end`` fixes how generation ends, through the saved generation config:

* ``forced_eos``: the last allowed token is EOS (never cut by the limit); 1 layer, outputs one repeated word;
* ``no_eos``: EOS suppressed (every output runs into the limit); 1 layer;
* ``varied``: 2 layers, large initial weights (``initializer_factor=16``) and a doubled EOS embedding, so
  greedy outputs vary in length and words: some end on EOS, some reach the limit.
"""

from __future__ import annotations

from pathlib import Path

from xvlm2vec.testing.fixtures import mmeb_train_rows

ENDINGS = ("forced_eos", "no_eos", "varied")


def word_tokenizer(subset: str = "OK-VQA", rows: int = 30):
    """A word-level fast tokenizer (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2) trained on ``rows`` fixture rows."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [v for row in mmeb_train_rows(subset, rows) for v in row.values()]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_t5(folder: str | Path, end: str = "forced_eos"):
    """Save a seeded random T5 and its tokenizer to ``folder`` (see the module docstring for ``end``);
    return ``(model, tokenizer)``."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    if end not in ENDINGS:
        raise ValueError(f"end must be one of {ENDINGS}, got {end!r}")
    tokenizer = word_tokenizer()
    varied = end == "varied"
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=64 if varied else 16,
        d_ff=128 if varied else 32,
        d_kv=8,
        num_layers=2 if varied else 1,
        num_heads=4 if varied else 2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        initializer_factor=16.0 if varied else 1.0,
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config).eval()
    # generated tokens are plain words: never pad, unk or the image tag (which would count as a lost or extra tag)
    words_only = [0, 2, tokenizer.convert_tokens_to_ids("<|image_1|>")]
    if varied:
        with torch.no_grad():
            model.shared.weight[1] *= 2.0
        model.generation_config.suppress_tokens = words_only
    elif end == "forced_eos":
        model.generation_config.forced_eos_token_id = 1
        model.generation_config.suppress_tokens = words_only
    else:
        model.generation_config.suppress_tokens = [1, *words_only]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer
