"""Build reports: rows in = rows out + rows rejected, with counts per reason.

Generators running in worker processes (``num_proc``) each write a :class:`ReportFragment` as a
JSON file into a shared folder; the build merges them into one :class:`BuildReport`, written as
``build_report.json`` next to the data and printed as a table.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xvlm2vec_common.safe_inputs import RowError, is_blank

MAX_EXAMPLES = 50
REPORT_FILENAME = "build_report.json"


@dataclass
class ReportFragment:
    """Counts from one generator run (one job of one split)."""

    rows_in: int = 0
    rows_out: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)

    def reject(self, err: RowError, where: str) -> None:
        """Count one rejected row, keeping the first examples with the file/line ``where``."""
        self.rejected[err.reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"reason": err.reason, "where": where, "message": str(err)})

    def accept(self) -> None:
        """Count one row written."""
        self.rows_out += 1

    def save(self, folder: str | Path) -> Path:
        """Write this fragment atomically as a new JSON file in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.json"
        tmp = path.with_suffix(".tmp")
        data = {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rejected": dict(self.rejected),
            "examples": self.examples,
        }
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def merge(self, other: "ReportFragment") -> None:
        """Add ``other``'s counts to this fragment."""
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.rejected.update(other.rejected)
        room = MAX_EXAMPLES - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])

    @classmethod
    def load_all(cls, folder: str | Path) -> "ReportFragment":
        """Merge every fragment saved in ``folder`` (none: an empty fragment)."""
        total = cls()
        for path in sorted(Path(folder).glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            total.merge(
                cls(
                    rows_in=data["rows_in"],
                    rows_out=data["rows_out"],
                    rejected=Counter(data["rejected"]),
                    examples=data["examples"],
                )
            )
        return total


@dataclass
class BuildReport:
    """The report of one build; ``passed`` is false when rejects exceed ``max_rejects``."""

    kind: str
    source: str
    output_dir: str
    max_rejects: int | None
    rows_in: int = 0
    rows_out: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    split_rows: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    empty_files: list[str] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        """Total rejected rows, all reasons together."""
        return sum(self.rejected.values())

    @property
    def balanced(self) -> bool:
        """True when rows in = rows out + rows rejected."""
        return self.rows_in == self.rows_out + self.rows_rejected

    @property
    def passed(self) -> bool:
        """True when the books balance, some row was written, and rejects stay within ``max_rejects`` (None: no
        limit).
        """
        within = self.max_rejects is None or self.rows_rejected <= self.max_rejects
        return self.balanced and within and self.rows_out > 0

    def add_rejects(self, fragment: ReportFragment) -> None:
        """Add a fragment's rejection counts and examples (not its row totals)."""
        for reason, count in fragment.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + count
        self.examples.extend(fragment.examples[: max(MAX_EXAMPLES - len(self.examples), 0)])

    def add(self, fragment: ReportFragment) -> None:
        """Fold a fragment's rows in, rows out and rejections into this report."""
        self.rows_in += fragment.rows_in
        self.rows_out += fragment.rows_out
        self.add_rejects(fragment)

    def list_source_files(self, folder: Path, used: list[Path], pattern: str = "*.jsonl") -> None:
        """Record the files matching ``pattern`` in ``folder`` that the build does not read, and the ``used`` ones
        that are empty.
        """
        used_names = {path.name for path in used}
        self.unknown_files = sorted(path.name for path in folder.glob(pattern) if path.name not in used_names)
        self.empty_files = sorted(path.name for path in used if is_blank(path))

    def set_split_rows(self, infos: dict) -> None:
        """Record rows per ``config/split`` from the built configs' ``DatasetInfo``."""
        self.split_rows = {
            f"{config}/{split}": info.splits[split].num_examples
            for config, info in infos.items()
            for split in info.splits
        }

    def to_dict(self) -> dict:
        """JSON-ready dict including the derived totals."""
        data = asdict(self)
        data.update(rows_rejected=self.rows_rejected, balanced=self.balanced, passed=self.passed)
        data["rejected"] = dict(sorted(self.rejected.items()))
        return data

    def save(self, path: str | Path | None = None) -> Path:
        """Write the report as JSON (default: ``<output_dir>/build_report.json``)."""
        path = Path(path) if path is not None else Path(self.output_dir) / REPORT_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    def table(self) -> str:
        """A readable summary table."""
        lines = [
            f"build {self.kind}: {self.source} -> {self.output_dir}",
            f"{'rows in':<28}{self.rows_in:>10}",
            f"{'rows out':<28}{self.rows_out:>10}",
            f"{'rows rejected':<28}{self.rows_rejected:>10}",
        ]
        lines += [f"  {reason:<26}{count:>10}" for reason, count in sorted(self.rejected.items())]
        if self.split_rows:
            lines.append("rows per config/split:")
            lines += [f"  {key:<26}{count:>10}" for key, count in sorted(self.split_rows.items())]
        lines += [f"note: {note}" for note in self.notes]
        lines += [f"unknown source file (not read): {name}" for name in self.unknown_files]
        lines += [f"empty source file: {name}" for name in self.empty_files]
        limit = "none" if self.max_rejects is None else str(self.max_rejects)
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"{verdict} (max rejects {limit}; balanced {self.balanced})")
        return "\n".join(lines)
