"""`ragbot sync`'s progress: a bar on a terminal, a plain line every few seconds otherwise.

Progress goes to stderr, so the summary on stdout stays one line a script can read.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from workers.ingest.progress import SyncProgress

PLAIN_EVERY_SECONDS = 10.0


class SyncDisplay:
    def __init__(self, source: str, stream: TextIO | None = None) -> None:
        self.source = source
        self.stream = stream or sys.stderr
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self._last_line = 0.0

    def __enter__(self) -> SyncDisplay:
        if self.stream.isatty():
            self.bar = Progress(
                TextColumn(f"{self.source}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "documents · {task.fields[rate]:.1f}/s · {task.fields[skipped]} skipped"
                ),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.source, total=None, rate=0.0, skipped=0)
        return self

    def __call__(self, progress: SyncProgress) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(
                self.task,
                completed=progress.listed,
                total=progress.expected,
                rate=progress.rate,
                skipped=progress.skipped,
            )
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_EVERY_SECONDS:
            self._last_line = now
            print(f"{self.source}: {progress.line()}", file=self.stream, flush=True)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.stop()
