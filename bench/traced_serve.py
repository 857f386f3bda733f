"""``onair serve`` under tracemalloc, for ``bench/fanout.py --idle N --trace`` (bench only).

A thread watches ``$ONAIR_TRACE_DIR``: when a file named ``before`` or ``after`` appears it writes
a tracemalloc snapshot next to it (``before.snap``/``after.snap``), so the benchmark can say
which lines hold the bytes of an idle connection. Tracing slows the server and adds its own
overhead to RSS: only the snapshot difference is meaningful, not the RSS of a traced run.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def watch(directory: Path) -> None:
    done: set[str] = set()
    while True:
        for name in ("before", "after"):
            if name not in done and (directory / name).exists():
                tracemalloc.take_snapshot().dump(str(directory / f"{name}.tmp"))
                (directory / f"{name}.tmp").rename(directory / f"{name}.snap")
                done.add(name)
        time.sleep(0.1)


def main() -> None:
    tracemalloc.start(1)
    threading.Thread(target=watch, args=(Path(os.environ["ONAIR_TRACE_DIR"]),), daemon=True).start()
    from onair.cli import app

    sys.argv = ["onair", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
