"""What ``VAULTGATE_DURABILITY=full`` costs against ``normal`` on SQLite: one figure per level.

Each level gets a fresh database opened by the vault's own ``create_engine`` (WAL, its pragmas,
``synchronous=FULL`` or ``NORMAL``) on the directory the vault would use, and commits one
use-record-sized row per transaction, one after the other: the case where every use is its own
group commit (a quiet vault), so the fsync is paid in full by each. Under load, group commit
shares one fsync among every use in its batch. ``python -m bench.durability`` runs it alone
(seconds; BENCH_DIR picks the disk); ``make bench`` prints it after the table.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from vaultgate.server.storage.engine import create_engine

ROW = "x" * 600  # about one audit event, chained and with its URL


@dataclass(frozen=True)
class Figure:
    level: str
    commits: int
    per_second: float
    p50_ms: float


def measure(level: str, commits: int, directory: Path) -> Figure:
    path = directory / f"durability-{level}.db"
    engine = create_engine(f"sqlite:///{path}", durability=level)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE uses (id INTEGER PRIMARY KEY, body TEXT)")
        times = []
        started = time.perf_counter()
        for _ in range(commits):
            t0 = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO uses (body) VALUES (:b)"), {"b": ROW})
            times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    return Figure(level, commits, commits / elapsed, statistics.median(times) * 1000)


def run(commits: int = 500, directory: str | None = None) -> list[Figure]:
    # In the working directory by default, where `make run` keeps the vault (./.vaultgate):
    # /tmp is often a tmpfs, whose fsync costs nothing and would hide the difference.
    with tempfile.TemporaryDirectory(dir=directory or ".") as tmp:
        return [measure(level, commits, Path(tmp)) for level in ("full", "normal")]


def render(figures: list[Figure]) -> str:
    full, normal = figures
    lines = [
        "durability on SQLite, one use record per commit (sequential):",
        *(
            f"  {f.level:<7} {f.per_second:>8.0f} commits/s  p50 {f.p50_ms:6.3f} ms"
            for f in figures
        ),
        f"  full costs {full.p50_ms - normal.p50_ms:.3f} ms more per commit "
        f"({normal.per_second / full.per_second:.1f}x the throughput with normal)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    print(render(run(count, os.environ.get("BENCH_DIR"))))
