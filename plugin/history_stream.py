"""A JSON Lines history in time order without holding it in memory.

``TimeOrdered(file)`` reads the file once to check every line (a bad line fails before anything is
simulated, with its line number, as before), count the events and see whether they already come
in time order, as exports and sample histories do. Iterating then reads the events again, one at
a time. A file out of order is sorted outside memory: chunks of ``chunk`` lines are sorted and
written to temporary files, then merged. The order is the one an in-memory stable sort gives:
by time, simultaneous events in file order.
"""
from __future__ import annotations

import heapq
import json
import os
import shutil
import tempfile
from datetime import datetime
from typing import IO, Iterable, Iterator

from plugin.events import Event, event_from_dict

#: lines sorted in memory at a time when a file is out of order (~60 MB of lines)
CHUNK = 50_000


def _parse(n: int, line: str) -> Event | None:
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    try:
        return event_from_dict(json.loads(line))
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {n}: not JSON: {exc.msg}") from None
    except ValueError as exc:
        raise ValueError(f"line {n}: {exc}") from None


class TimeOrdered:
    """The events of a JSON Lines history, in time order; ``len()`` is their number."""

    def __init__(self, f: IO[str], chunk: int = CHUNK):
        if not f.seekable():  # stdin: kept in an unnamed temporary file, read twice
            spooled = tempfile.TemporaryFile("w+", encoding="utf-8")
            shutil.copyfileobj(f, spooled)
            f = spooled
        self._file, self._chunk = f, chunk
        self._count, self.in_order = 0, True
        last: datetime | None = None
        f.seek(0)
        for n, line in enumerate(f, 1):
            e = _parse(n, line)
            if e is None:
                continue
            self._count += 1
            if last is not None and e.occurred_at < last:
                self.in_order = False
            last = e.occurred_at if last is None or e.occurred_at > last else last

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Event]:
        self._file.seek(0)
        if self.in_order:
            return (e for e in (_parse(n, line) for n, line in enumerate(self._file, 1)) if e is not None)
        return self._merged()

    def _merged(self) -> Iterator[Event]:
        with tempfile.TemporaryDirectory(prefix="keepwell-sort-") as tmp:
            runs = []
            for i, run in enumerate(self._sorted_runs()):
                path = os.path.join(tmp, f"{i}.jsonl")
                with open(path, "w", encoding="utf-8") as out:
                    out.writelines(f"{n}\t{line}" for _, n, line in run)
                runs.append(path)
            files = [open(p, encoding="utf-8") for p in runs]
            try:
                yield from (e for _, _, e in heapq.merge(*(_read_run(f) for f in files)))
            finally:
                for f in files:
                    f.close()

    def _sorted_runs(self) -> Iterator[list[tuple[datetime, int, str]]]:
        run: list[tuple[datetime, int, str]] = []
        for n, line in enumerate(self._file, 1):
            e = _parse(n, line)
            if e is None:
                continue
            run.append((e.occurred_at, n, line.strip() + "\n"))
            if len(run) >= self._chunk:
                run.sort(key=lambda r: (r[0], r[1]))
                yield run
                run = []
        if run:
            run.sort(key=lambda r: (r[0], r[1]))
            yield run


def _read_run(f: Iterable[str]) -> Iterator[tuple[datetime, int, Event]]:
    for row in f:
        n, _, line = row.partition("\t")
        e = _parse(int(n), line)
        assert e is not None  # only events were written
        yield e.occurred_at, int(n), e
