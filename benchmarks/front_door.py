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


def start_front_door(env: dict[str, str], log: IO[bytes]) -> tuple[subprocess.Popen[bytes], int]:
    """`ragbot serve` on a free port, once it answers /healthz (or after 30 s)."""
    port = free_port()
    process = subprocess.Popen(
        [RAGBOT, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    return process, port


def start_worker(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [RAGBOT, "worker", "--pool", "solo", "--without-gossip", "--without-mingle"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
