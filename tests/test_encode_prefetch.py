"""The prefetching pipeline (``encode(num_workers=...)``, ``eval --num-workers``): worker threads prepare the next
batches while the model runs, and the embeddings stay bitwise the same as one thread's."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from conftest import BACKBONES

from modeling_xvlm2vec.prefetch import CopyPool, prefetch


@pytest.mark.parametrize("backbone", BACKBONES)
def test_embeddings_are_bitwise_equal_with_0_and_2_workers(tiny_models, images, backbone: str) -> None:
    model, _ = tiny_models(backbone)
    texts = ["a red square", None, "un cerchio blu su sfondo bianco, piccolo", "<|image_1|> what is shown?"] * 3
    with_image = [text is None or "<|image_1|>" in text or i % 3 == 0 for i, text in enumerate(texts)]
    rows = [images[i % len(images)] if has else None for i, has in enumerate(with_image)]
    inline = model.encode(texts, images=rows, batch_size=2, convert_to_tensor=True)
    ahead = model.encode(texts, images=rows, batch_size=2, convert_to_tensor=True, num_workers=2)
    assert torch.equal(inline, ahead)  # bitwise: same batches, same processor settings, same forward order


def test_prefetch_keeps_order_runs_ahead_and_raises_at_the_item() -> None:
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        time.sleep(0.01 * (5 - item % 5))  # later items finish first
        if item == 7:
            raise KeyError(item)
        return item * item

    results = prefetch(work, range(10), num_workers=2)
    assert next(results) == 0
    time.sleep(0.2)
    assert len(started) >= 3  # the workers ran ahead of the consumer (at most 2 * 2 items in flight)
    assert [next(results) for _ in range(6)] == [1, 4, 9, 16, 25, 36]
    with pytest.raises(KeyError):
        next(results)
    assert list(prefetch(work, range(5), num_workers=0)) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError, match="num_workers"):
        list(prefetch(work, range(2), num_workers=-1))


def test_copy_pool_lends_each_copy_to_one_thread_at_a_time() -> None:
    pool = CopyPool({"settings": [1]})
    seen: dict[int, set[int]] = {}
    barrier = threading.Barrier(3)

    def borrow() -> None:
        with pool.borrow() as copy:
            assert copy is not pool.original and copy == pool.original
            seen.setdefault(id(copy), set()).add(threading.get_ident())
            barrier.wait(timeout=10)  # all three hold a copy at once: three different copies

    threads = [threading.Thread(target=borrow) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 3
    with pool.borrow() as again:  # returned copies are reused, not copied again
        assert id(again) in seen


@pytest.mark.parametrize(("config", "language"), [("xtd_i2t", "fr"), ("maxm_v1_vqa", "fr")])
def test_runner_scores_are_bitwise_equal_with_0_and_2_workers(built_mmmeb, tiny_models, config, language) -> None:
    import numpy as np

    from xvlm2vec.evaluation.data import load_split
    from xvlm2vec.evaluation.embedders import XVLM2VecEmbedder
    from xvlm2vec.evaluation.runner import RunConfig, Runner

    model, _ = tiny_models("phi3_v")
    embedder = XVLM2VecEmbedder(model, "tiny")
    split = load_split(str(built_mmmeb), config, language)
    scores = [
        Runner(RunConfig(batch_size=3, num_workers=workers), metric=lambda **_: {}).score_split(
            embedder, split, "punct", {}, {}
        )
        for workers in (0, 2)
    ]
    assert len(scores[0]) == len(split.rows) and all(np.array_equal(a, b) for a, b in zip(*scores))
    # the runner's prepare-ahead path embeds exactly as the embedder's one-call path (model.encode) does
    texts = [row.text for row in split.rows]
    images = [split.image(row.image_id) for row in split.rows]
    direct = embedder.embed(texts, images, 3)
    assert np.array_equal(embedder.embed_prepared(embedder.prepare(texts, images, 3, num_workers=1)), direct)


def test_teacher_cache_columns_are_bitwise_equal_with_0_and_2_workers(tmp_path) -> None:
    from test_train_fixtures import corpus_splits, lora_student, skd_config, write_parallel_corpus

    from xvlm2vec.training import SKDTrainer

    train, _ = corpus_splits(write_parallel_corpus(tmp_path / "corpus", train=11, dev=2))
    columns = []
    for workers in (0, 2):
        args = skd_config(
            tmp_path / f"w{workers}",
            teacher_cache=str(tmp_path / f"cache{workers}"),  # separate folders: both really compute
            teacher_cache_batch_size=3,  # 11 rows: the last batch is short
            teacher_cache_num_workers=workers,
            image_loss=True,
        )
        trainer = SKDTrainer(model=lora_student(), args=args, train_dataset=train)
        columns.append([trainer.train_dataset[name] for name in ("teacher_embedding", "teacher_image_embedding")])
    assert all(row is not None for row in columns[0][0])
    assert columns[0] == columns[1]  # float32 values compared exactly


def test_a_chat_convention_with_a_system_prompt_is_the_same_with_workers(images) -> None:
    from xvlm2vec.testing.tiny_model import build_tiny_model

    model, _ = build_tiny_model("qwen3_vl", seed=0, convention="qwen3_vl_embedding")
    texts = ["a red square", "<|image_1|> what is shown?", "un cerchio blu", None]
    rows = [None, images[0], None, images[1]]
    kwargs = {"images": rows, "batch_size": 2, "convert_to_tensor": True, "system_prompt": "Find the match."}
    inline = model.encode(texts, **kwargs)
    assert torch.equal(inline, model.encode(texts, num_workers=2, **kwargs))
    assert not torch.equal(inline, model.encode(texts, images=rows, batch_size=2, convert_to_tensor=True))
