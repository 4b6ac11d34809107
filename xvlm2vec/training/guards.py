"""Guards of a training run: bad rows, non-finite steps and non-finite weights, counted and bounded.

:class:`RunGuard` keeps the counts the trainer logs and decides, once per optimizer step and identically on
every process (one summed all-reduce), whether the step is skipped (a non-finite loss, teacher target or
gradient on any process) and whether the run must stop (:class:`TrainingStopped`): too many skipped steps in
a row, or a larger share of bad rows than the recipe allows. The trainer calls it; nothing here runs a model.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable

import torch

from .collator import Rejection

logger = logging.getLogger(__name__)

#: Rows seen before the bad-row share is checked (a single unlucky first batch does not stop a run).
MIN_ROWS_FOR_SHARE = 32


class TrainingStopped(RuntimeError):
    """The run stopped on its guards (bad rows, non-finite steps or weights); no model was saved."""


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a tensor (a DTensor shard under FSDP2, the tensor itself otherwise)."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """Whether every element of this process's part of ``tensors`` is finite (True for none)."""
    parts = [local(tensor).detach() for tensor in tensors]
    parts = [part for part in parts if part.numel()]
    if not parts:
        return True
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(parts, error_if_nonfinite=False)))


def reason_counts(rejections: Iterable[Rejection]) -> str:
    """``"3 x reason, 1 x other reason"``, the most frequent first."""
    counts = collections.Counter(rejection.reason.split(":")[0] for rejection in rejections)
    return ", ".join(f"{count} x {reason}" for reason, count in counts.most_common())


class RunGuard:
    """Counts of a run (rows, bad rows, skipped batches and steps) and the decisions they lead to.

    Args:
        max_bad_row_share: stop when more than this share of the rows seen (all processes) were bad.
        max_nonfinite_steps: stop after this many optimizer steps in a row skipped for non-finite values.
        reduce_sum: sums a tensor over the processes (the identity on one process).
    """

    def __init__(
        self, max_bad_row_share: float, max_nonfinite_steps: int, reduce_sum: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        self.max_bad_row_share = max_bad_row_share
        self.max_nonfinite_steps = max_nonfinite_steps
        self.reduce_sum = reduce_sum
        self.rows = 0
        self.rejected: list[Rejection] = []
        self.skipped_batches = 0
        self.nonfinite_steps = 0
        self.nonfinite_in_a_row = 0
        self.pending_reason: str | None = None  # why the current step's values are non-finite, if they are

    def count_batch(self, inputs: dict) -> None:
        """Add a collated batch's row count and rejections."""
        self.rows += int(inputs.get("rows", 0))
        self.rejected.extend(inputs.get("rejected_rows", ()))

    def flag(self, reason: str) -> None:
        """Mark the current optimizer step as non-finite (the first reason is kept)."""
        self.pending_reason = self.pending_reason or reason

    def any_process(self, value: bool, device: torch.device) -> bool:
        """Whether ``value`` is true on any process (a collective: every process must call it)."""
        return bool(self.reduce_sum(torch.tensor([float(value)], device=device)).item() > 0)

    def decide_step(self, gradients: list[torch.Tensor], device: torch.device) -> bool:
        """Whether the optimizer step must be skipped; raise :class:`TrainingStopped` when the run must stop.

        One collective with every process's verdict and row counts, so all take the same decision.
        """
        reason = self.pending_reason or (None if all_finite(gradients) else "non-finite gradients")
        self.pending_reason = None
        totals = self.reduce_sum(
            torch.tensor(
                [float(reason is not None), self.rows, len(self.rejected)], device=device, dtype=torch.float64
            )
        ).tolist()
        bad, rows, rejected = totals
        if rows >= MIN_ROWS_FOR_SHARE and rejected > self.max_bad_row_share * rows:
            raise TrainingStopped(
                f"{int(rejected)} of {int(rows)} rows are bad, more than max_bad_row_share {self.max_bad_row_share} "
                f"({reason_counts(self.rejected) or 'on other processes'}); fix the corpus or raise the share"
            )
        if not bad:
            self.nonfinite_in_a_row = 0
            return False
        self.nonfinite_steps += 1
        self.nonfinite_in_a_row += 1
        logger.warning(
            "optimizer step skipped: %s (%d in a row; the run stops at %d)",
            reason or "non-finite values on another process",
            self.nonfinite_in_a_row,
            self.max_nonfinite_steps,
        )
        if self.nonfinite_in_a_row >= self.max_nonfinite_steps:
            raise TrainingStopped(
                f"{self.nonfinite_in_a_row} optimizer steps in a row had non-finite values "
                f"({reason or 'on another process'}); stopped without saving (lower the learning rate, check the "
                "teacher and the data, or use float32/bf16 instead of fp16)"
            )
        return True

    def report(self, rejected: list[Rejection]) -> None:
        """Log the run's rejected rows (``rejected``: gathered from every process) by reason."""
        if rejected:
            logger.warning(
                "%d parallel rows were rejected (%s); listed in rejected_rows.jsonl of the output folder",
                len(rejected),
                reason_counts(rejected),
            )
