"""A docs folder written by someone hostile: the sample handbook plus every kind of bad file.

Usage: python -m benchmarks.hostile_folder

Runs `ragbot sync files --full` on a copy of `samples/handbook` with symlinks out of the root
(to /proc/self/environ, a secret file, /dev/zero), a FIFO, a 200 MB-inflating zip bomb, a
malformed and a memory-hungry DOCX (76 KB that parses into gigabytes), a 50 MB log, a binary
`.md`, invalid UTF-8 and an empty file. Reports the wall time, the peak RSS of the sync and of
its parser process, every skip with its reason, whether every good file was indexed, and
whether the secret can be searched.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.test_hostile_files import word_file, zip_bomb

ROOT = Path(__file__).resolve().parent.parent
RAGBOT = str(Path(sys.executable).parent / "ragbot")
CANARY = "xoxb-canary-bench-4411"
BAD = (
    "env.txt",
    "secret.md",
    "zero.md",
    "pipe.md",
    "bomb.docx",
    "malformed.docx",
    "greedy.docx",
    "huge.log",
    "binary.md",
    "invalid-utf8.txt",
    "empty.md",
)


def build(root: Path, outside: Path) -> int:
    """The handbook plus the bad files; returns how many good files the handbook has."""
    shutil.copytree(ROOT / "samples" / "handbook", root)
    good = sum(1 for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    (outside / "secret.txt").write_text(f"production deploy token {CANARY}\n")
    (root / "env.txt").symlink_to("/proc/self/environ")
    (root / "secret.md").symlink_to(outside / "secret.txt")
    (root / "zero.md").symlink_to("/dev/zero")
    os.mkfifo(root / "pipe.md")
    (root / "bomb.docx").write_bytes(zip_bomb(inflated_mb=200))
    (root / "malformed.docx").write_bytes(word_file(extra_xml="<w:p><w:r>"))
    (root / "greedy.docx").write_bytes(
        word_file(extra_xml="<w:p><w:r><w:t>a</w:t></w:r></w:p>" * 400_000)
    )
    with (root / "huge.log").open("wb") as log:
        for _ in range(50):
            log.write(b"GET /health 200 0.001s\n" * (1024 * 1024 // 23))
    (root / "binary.md").write_bytes(os.urandom(64 * 1024))
    (root / "invalid-utf8.txt").write_bytes(b"caf\xe9 \xff\xfe\xfd cr\xe8me")
    (root / "empty.md").write_text("")
    return good


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RAGBOT, *args], env=env, capture_output=True, text=True, timeout=600)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ragbot-hostile-"))
    try:
        outside = work / "outside"
        outside.mkdir()
        good = build(work / "docs", outside)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "QDRANT_URL", "OPENAI_API_KEY")
        } | {
            "RAGBOT_DATA_DIR": str(work / "data"),
            "FILES_PATH": str(work / "docs"),
            "RAGBOT_ORG_DOMAINS": "acme.com",
            "SLACK_BOT_TOKEN": CANARY,
        }
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        synced = run(["sync", "files", "--full"], env)
        seconds = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        status = json.loads(run(["status", "--json"], env).stdout)["sources"][0]
        leaks = [
            question
            for question in (f"What is the production deploy token {CANARY}?", "SLACK_BOT_TOKEN")
            if CANARY in run(["ask", question, "--json"], env).stdout
        ]
        skipped = status["skipped"]
        print(f"exit {synced.returncode}: {synced.stdout.strip() or synced.stderr.strip()}")
        print(f"wall time: {seconds:.1f} s")
        print(f"peak RSS of any process (sync or its parser): {peak_mb:.0f} MB (before: {before})")
        print(f"good files indexed: {status['documents']} of {good}")
        print(f"bad files reported: {sum(f'files:{b}' in skipped for b in BAD)} of {len(BAD)}")
        for item, reason in sorted(skipped.items()):
            print(f"  {item}: {reason}")
        print(f"secret searchable: {'YES: ' + ', '.join(leaks) if leaks else 'no'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
