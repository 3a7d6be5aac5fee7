"""Untrusted documents are parsed in a child process that may be killed.

A format library can hang on a crafted file (or on a FIFO it was handed) or inflate a few
kilobytes into gigabytes, deep inside C code that no Python timeout reaches. So rich formats
(PDF, Office, HTML) are parsed by a child process with an address-space limit and a wall-clock
budget: when either is hit the child dies, the document is skipped with that reason, and the
next document gets a fresh child. The child starts with an empty environment, so nothing it
parses can reach the worker's tokens. Plain text and Markdown are only decoded, in-process.
"""

from __future__ import annotations

import json
import os
import selectors
import struct
import subprocess
import sys
import threading
import time
from types import TracebackType

from connectors.limits import MB, ParseLimits
from connectors.parsing import MARKDOWN_SUFFIXES, TEXT_SUFFIXES, UnreadableDocument, to_markdown

_HEADER = struct.Struct(">II")
_REPLY = struct.Struct(">I")


class IsolatedParser:
    """`to_markdown` with limits that hold whatever the bytes are. Thread-safe; one child."""

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self.limits = limits or ParseLimits()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> IsolatedParser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def to_markdown(self, data: bytes, suffix: str) -> str:
        suffix = suffix.lower()
        if suffix in MARKDOWN_SUFFIXES or suffix in TEXT_SUFFIXES:
            return to_markdown(data, suffix, self.limits)  # decoding is bounded by the bytes
        if len(data) > self.limits.max_bytes:
            raise UnreadableDocument(f"larger than {self.limits.max_bytes // MB} MB")
        with self._lock:
            return self._in_child(data, suffix)

    def close(self) -> None:
        with self._lock:
            self._stop_child()

    def _in_child(self, data: bytes, suffix: str) -> str:
        child = self._child if self._child and self._child.poll() is None else self._start()
        assert child.stdin is not None and child.stdout is not None
        encoded = suffix.encode()
        try:
            child.stdin.write(_HEADER.pack(len(encoded), len(data)) + encoded + data)
            child.stdin.flush()
            reply = _read_reply(child.stdout.fileno(), time.monotonic() + self.limits.seconds)
        except TimeoutError:
            self._stop_child()
            raise UnreadableDocument(
                f"parsing took longer than {self.limits.seconds:g} s"
            ) from None
        except (OSError, EOFError):
            self._stop_child()
            raise UnreadableDocument(
                "the parser stopped (it ran out of its "
                f"{self.limits.memory_bytes // MB} MB of memory, or crashed)"
            ) from None
        if "error" in reply:
            if reply.get("fatal"):
                self._stop_child()
            raise UnreadableDocument(str(reply["error"]))
        return str(reply["text"])

    def _start(self) -> subprocess.Popen[bytes]:
        self._stop_child()
        limits = self.limits
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connectors.isolation",
                json.dumps(
                    {
                        "max_bytes": limits.max_bytes,
                        "max_inflated_bytes": limits.max_inflated_bytes,
                        "max_entries": limits.max_entries,
                        "seconds": limits.seconds,
                        "memory_bytes": limits.memory_bytes,
                    }
                ),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        return self._child

    def _stop_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            child.kill()
        child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()


def _read_reply(fd: int, deadline: float) -> dict[str, object]:
    length = _REPLY.unpack(_read_exactly(fd, _REPLY.size, deadline))[0]
    parsed: dict[str, object] = json.loads(_read_exactly(fd, length, deadline))
    return parsed


def _read_exactly(fd: int, size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            remaining -= len(chunk)
    return b"".join(chunks)


def _serve(limits: ParseLimits) -> None:
    """The child: limit its own memory, then parse requests until stdin closes."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = source.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        suffix_length, data_length = _HEADER.unpack(header)
        suffix = source.read(suffix_length).decode()
        data = source.read(data_length)
        reply: dict[str, object]
        try:
            reply = {"text": to_markdown(data, suffix, limits)}
        except UnreadableDocument as exc:
            # Memory errors leave a process whose heap cannot be trusted: start a new one.
            # C libraries do not always say so (libxml2 reports "unknown error"), so a failure
            # with the address space at its limit counts as one.
            exhausted = isinstance(exc.__cause__, MemoryError) or _at_memory_limit(limits)
            error = f"ran out of its {limits.memory_bytes // MB} MB of memory" if exhausted else ""
            reply = {"error": error or str(exc), "fatal": exhausted}
        del data
        body = json.dumps(reply, ensure_ascii=False).encode()
        sink.write(_REPLY.pack(len(body)) + body)
        sink.flush()


def _at_memory_limit(limits: ParseLimits) -> bool:
    """Whether this process's address space came within 5% of its limit (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024 >= 0.95 * limits.memory_bytes
    except (OSError, ValueError):
        pass
    return False


if __name__ == "__main__":
    _serve(ParseLimits(**json.loads(sys.argv[1])))
