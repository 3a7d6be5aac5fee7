"""Running ragbot as its users do: `ragbot serve` and `ragbot worker` as separate processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

RAGBOT = str(Path(sys.executable).parent / "ragbot")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Stack:
    """The front door and a worker as separate processes, wired to the fakes."""

    def __init__(self, env: dict[str, str], port: int, logs: Path) -> None:
        self.env, self.port, self.logs = env, port, logs
        self.server: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None  # the one started last
        self.workers: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_server(self) -> None:
        self.server = self._spawn("serve", ["serve", "--port", str(self.port)])
        wait_for(self._healthy, 30, "the front door")

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        """`ragbot worker` with `args` (e.g. `-Q embed`)."""
        self.worker = self._spawn(
            "worker",
            ["worker", *args, "--without-gossip", "--without-mingle", "--without-heartbeat"],
        )
        self.workers.append(self.worker)
        return self.worker

    def kill_worker(self, worker: subprocess.Popen[bytes] | None = None) -> None:
        """kill -9, as the OOM killer or a lost node does."""
        process = worker or self.worker
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}-{time.monotonic_ns()}.log").open("wb")
        return subprocess.Popen([RAGBOT, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        for process in (self.server, *self.workers):
            if process and process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
