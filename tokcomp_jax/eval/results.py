"""Append-only per-sample results (jsonl), written a batch at a time, so a killed run resumes.

Each batch's records are written, flushed and fsynced before the next batch starts; a line cut
short by a kill is ignored on reading (and its sample done again), never half-trusted. A run that
every host computes together (one mesh over all hosts) keeps one file on host 0: HostZeroResults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from tokcomp_jax.runs import digest


class ResultsFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """Every complete record, in the order written; a sample written twice counts once (the first).
        A line that is not a whole record (cut short by a kill, or damaged) is passed over: its sample
        is done again."""
        records = {}
        for _, record, _ in self._lines():
            if isinstance(record, dict) and "sample_id" in record:
                records.setdefault(record["sample_id"], record)
        return list(records.values())

    def read_whole(self, fields: tuple[str, ...] = ("sample_id", "reply")) -> list[dict]:
        """Like `read`, but every line must be a whole record holding `fields`: anything else raises
        ValueError naming the file, the line and what is wrong (a rescore must not pass over a sample)."""
        records = {}
        for number, record, problem in self._lines():
            if problem is None and not (isinstance(record, dict) and all(field in record for field in fields)):
                problem = f"not a record with {', '.join(fields)}"
            if problem is not None:
                raise ValueError(
                    f"{self.path}:{number}: not a whole record ({problem}: cut short by a killed run, or edited); "
                    "finish the run (the same command without --rescore) or start it over (--overwrite)"
                )
            records.setdefault(record["sample_id"], record)
        return list(records.values())

    def _lines(self) -> Iterator[tuple[int, object, str | None]]:
        """(line number, the line's JSON value or None, what is wrong with it or None) of each non-empty line."""
        if not self.path.exists():
            return
        for number, line in enumerate(self.path.read_bytes().split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line.decode("utf-8")), None
            except UnicodeDecodeError as err:
                yield number, None, f"byte 0x{line[err.start]:02x} at column {err.start + 1} is not UTF-8"
            except json.JSONDecodeError:
                yield number, None, "not JSON"

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


class HostZeroResults:
    """The results of a run all hosts compute together, batch by batch: host 0 keeps the file, the
    others write nothing and take which of `sample_ids` are finished from host 0 (so every host
    resumes at the same batch, without a shared filesystem)."""

    def __init__(self, path: str | Path, sample_ids: Sequence[str]):
        self.file = ResultsFile(path)
        self.path = self.file.path
        self.sample_ids = list(sample_ids)
        self.keeper = jax.process_index() == 0

    def read(self) -> list[dict]:
        return self.file.read() if self.keeper else []

    def finished_ids(self) -> set[str]:
        finished = self.file.finished_ids() if self.keeper else set()
        mask = np.array([sample_id in finished for sample_id in self.sample_ids] + [False], np.int32)
        mask = np.asarray(multihost_utils.broadcast_one_to_all(mask))[:-1] > 0  # the extra entry: never empty
        return {sample_id for sample_id, done in zip(self.sample_ids, mask, strict=True) if done}

    def append(self, records: Iterable[dict]) -> None:
        if self.keeper:
            self.file.append(records)


def data_fingerprint(adapter: str, data_dir: str | Path, samples: Sequence) -> dict:
    """What a run's results depend on in a benchmark, as its fingerprint records them: the adapter, the
    data directory and a digest of the samples' ids, prompts and answers (not the media bytes)."""
    return {"adapter": adapter, "data_dir": str(Path(data_dir).absolute()),
            "samples": digest([(s.sample_id, s.prompt, s.answers) for s in samples])}  # fmt: skip
