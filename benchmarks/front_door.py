"""What the chat front-door benchmarks share: the questions, an index to answer them from, and
ragbot's front door and one worker as processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from benchmarks.search_latency import build
from workers.rag.embed import LocalE5Embedder
from workers.runtime import Runtime
from workers.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RAGBOT = str(Path(sys.executable).parent / "ragbot")
QUESTIONS = [
    "How long is parental leave?",
    "What is the hotel limit per night?",
    "How do I roll back a production deploy?",
    "연차 이월 한도는 며칠인가요?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_index(data_dir: Path, chunks: int) -> None:
    """The sample handbook plus `chunks` synthetic chunks, in the embedded index."""
    settings = Settings(
        ragbot_data_dir=data_dir,
        files_path=ROOT / "samples" / "handbook",
        redis_url=None,
        openai_api_key=None,
    )
    with Runtime(settings) as runtime:
        runtime.syncer().sync(runtime.connector("files"))
    build(data_dir / "index" / LocalE5Embedder.name, chunks)


def wait_until_healthy(port: int, seconds: float, poll: float = 0.2) -> bool:
    """True once the server on `port` answers /healthz with 200; False after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(poll)
    return False


def start_front_door(env: dict[str, str], log: IO[bytes]) -> tuple[subprocess.Popen[bytes], int]:
    """`ragbot serve` on a free port, once it answers /healthz (or after 30 s)."""
    port = free_port()
    process = subprocess.Popen(
        [RAGBOT, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    wait_until_healthy(port, 30)
    return process, port


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def start_worker(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [RAGBOT, "worker", "--pool", "solo", "--without-gossip", "--without-mingle"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
