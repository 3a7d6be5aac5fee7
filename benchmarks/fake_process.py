"""A fake service in a process of its own, so its work never competes with what is timed."""

from __future__ import annotations

import subprocess
import sys


def spawn_fake(code: str, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """`code` starts the fake, prints what a client needs on one line and waits for its stdin
    to close. Returns the process and that line's words."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().split()
