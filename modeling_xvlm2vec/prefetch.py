"""Preparing the next batches while the model runs: worker threads that load images and run the processor ahead.

:func:`prefetch` maps a function over items in worker threads, at most ``2 * num_workers`` items ahead of the
consumer, and yields the results in item order (``num_workers=0``: inline, nothing ahead). Image decoding,
PIL resizing and torch tensor operations release the GIL, so on a machine with spare cores (or with the
model on a GPU) the preparation of batch k+1 overlaps the forward of batch k. Results do not depend on the
number of workers: every item is prepared by the same function, and only the timing changes.

A processor or tokenizer is not safe to call from several threads at once (a fast tokenizer's padding
settings are shared state), so workers borrow private copies from a :class:`CopyPool`.
"""

from __future__ import annotations

import copy
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import torch

Item = TypeVar("Item")
Result = TypeVar("Result")
Shared = TypeVar("Shared")


def prefetch(work: Callable[[Item], Result], items: Iterable[Item], num_workers: int = 0) -> Iterator[Result]:
    """Yield ``work(item)`` for every item, in order; with ``num_workers > 0`` computed ahead in that many threads.

    An exception raised by ``work`` is raised here, at its item; stopping the iteration early cancels the
    items not started yet.
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if num_workers == 0:
        yield from map(work, items)
        return
    iterator = iter(items)
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(num_workers, thread_name_prefix="xvlm2vec-prefetch") as pool:
        try:
            for item in iterator:
                pending.append(pool.submit(work, item))
                if len(pending) >= 2 * num_workers:
                    break
            while pending:
                result = pending.popleft().result()
                for item in iterator:
                    pending.append(pool.submit(work, item))
                    break
                yield result
        finally:
            for future in pending:
                future.cancel()


class CopyPool(Generic[Shared]):
    """Private deep copies of one object (a processor) lent to threads: one borrower per copy at a time."""

    def __init__(self, original: Shared) -> None:
        self.original = original
        self._free: queue.SimpleQueue = queue.SimpleQueue()

    @contextmanager
    def borrow(self) -> Iterator[Shared]:
        """A copy nobody else is using (a new one when all are lent), returned to the pool afterwards."""
        try:
            item = self._free.get_nowait()
        except queue.Empty:
            item = copy.deepcopy(self.original)
        try:
            yield item
        finally:
            self._free.put(item)


def pin_tensors(batch: Any) -> Any:
    """``batch`` (a dict-like of tensors, e.g. a ``BatchFeature``) with every CPU tensor in page-locked memory, so
    that copies to the GPU can be ``non_blocking``; needs CUDA."""
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.device.type == "cpu":
            batch[key] = value.pin_memory()
    return batch


__all__ = ["CopyPool", "pin_tensors", "prefetch"]
