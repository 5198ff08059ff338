"""Append-only per-sample results (jsonl), written a batch at a time, so a killed run resumes.

Each batch's records are written, flushed and fsynced before the next batch starts; a line cut
short by a kill is ignored on reading (and its sample done again), never half-trusted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


class ResultsFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """Every complete record, in the order written; a sample written twice counts once (the first)."""
        if not self.path.exists():
            return []
        records = {}
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the partial last line of a killed run
            records.setdefault(record["sample_id"], record)
        return list(records.values())

    def finished_ids(self) -> set[str]:
        return {record["sample_id"] for record in self.read()}

    def append(self, records: Iterable[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(record) + "\n" for record in records)
        with self.path.open("a") as handle:
            if handle.tell() and not self._ends_with_newline():
                handle.write("\n")  # close off a killed run's partial line
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
