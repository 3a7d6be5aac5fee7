"""A docs folder whose writers are not trusted, synced and searched through the `ragbot` command.

Symlinks out of the root, FIFOs, devices, zip bombs, malformed and enormous files: each is
skipped with its reason in `ragbot status`, the sync finishes, every good file is indexed and
nothing from outside the folder can be searched.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import docx
import pytest

from connectors.isolation import IsolatedParser
from connectors.limits import ParseLimits
from connectors.parsing import UnreadableDocument
from tests.test_cli import run

CANARY = "xoxb-canary-7f3a9c"


def word_file(paragraphs: int = 1, extra_xml: str = "") -> bytes:
    """A DOCX; with `extra_xml`, that markup is placed verbatim at the start of the body."""
    document = docx.Document()
    document.add_heading("Travel", level=1)
    for _ in range(paragraphs):
        document.add_paragraph("Book trains for trips under four hours.")
    buffer = io.BytesIO()
    document.save(buffer)
    if not extra_xml:
        return buffer.getvalue()
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + extra_xml.encode())
            archive.writestr(info.filename, data)
    return out.getvalue()


def greedy_word_file() -> bytes:
    """An 80 KB DOCX whose parse takes far more than 256 MB of memory."""
    return word_file(extra_xml="<w:p><w:r><w:t>a</w:t></w:r></w:p>" * 400_000)


def zip_bomb(inflated_mb: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<" + b"a" * (inflated_mb * 1024 * 1024))
    return out.getvalue()


def hostile_folder(root: Path, outside: Path) -> dict[str, str]:
    """Good files plus one of each bad kind; returns bad file -> a word its reason must hold."""
    root.mkdir()
    (root / "travel.md").write_text("# Travel\n\nBook trains for trips under four hours.\n")
    (root / "guides").mkdir()
    (root / "guides" / "vpn.md").write_text("# VPN\n\nConnect with the acme-vpn client.\n")
    (root / "alias.md").symlink_to(root / "guides" / "vpn.md")  # inside the root: followed
    secret = outside / "secret.txt"
    secret.write_text(f"deploy token {CANARY}\n")
    (root / "env.txt").symlink_to("/proc/self/environ")
    (root / "notes.txt").symlink_to(secret)
    (root / "zero.md").symlink_to("/dev/zero")
    (root / "dangling.md").symlink_to(root / "missing.md")
    os.mkfifo(root / "pipe.md")
    (root / "broken.docx").write_bytes(word_file()[:-40])  # truncated archive
    (root / "malformed.docx").write_bytes(word_file(extra_xml="<w:p><w:r>"))  # bad XML
    (root / "bomb.docx").write_bytes(zip_bomb(inflated_mb=8))
    (root / "huge.log").write_bytes(b"GET /health 200\n" * 200_000)  # ~3 MB
    (root / "binary.md").write_bytes(bytes(range(256)) * 64)
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me \xff\xfe".encode("latin-1"))
    (root / "empty.md").write_text("")
    return {
        "env.txt": "outside FILES_PATH",
        "notes.txt": "outside FILES_PATH",
        "zero.md": "outside FILES_PATH",
        "dangling.md": "broken",
        "pipe.md": "FIFO",
        "broken.docx": "Office",
        "malformed.docx": "parsed",
        "bomb.docx": "inflates",
        "huge.log": "larger than 1 MB",
        "binary.md": "binary",
        "latin1.txt": "neither UTF-8",
        "empty.md": "no text",
    }


@pytest.fixture
def hostile_env(tmp_path: Path) -> tuple[dict[str, str], dict[str, str], Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "docs"
    bad = hostile_folder(root, outside)
    env = {
        "RAGBOT_DATA_DIR": str(tmp_path / "data"),
        "FILES_PATH": str(root),
        "SLACK_BOT_TOKEN": CANARY,  # what /proc/self/environ of the syncing process holds
        "RAGBOT_MAX_FILE_MB": "1",
        "RAGBOT_MAX_INFLATED_MB": "4",
    }
    return env, bad, root


def test_a_hostile_folder_syncs_every_good_file_and_reports_every_bad_one(
    hostile_env: tuple[dict[str, str], dict[str, str], Path],
) -> None:
    env, bad, _ = hostile_env
    synced = run("sync", "files", "--full", env=env)
    assert synced.returncode == 0, synced.stderr
    assert "3 indexed" in synced.stdout and f"{len(bad)} skipped" in synced.stdout

    (files,) = json.loads(run("status", "--json", env=env).stdout)["sources"]
    assert files["documents"] == 3 and files["last_error"] is None
    assert set(files["skipped"]) == {f"files:{name}" for name in bad}
    for name, reason in bad.items():
        assert reason in files["skipped"][f"files:{name}"], (name, files["skipped"])

    for question in (f"What is the deploy token {CANARY}?", "SLACK_BOT_TOKEN PATH HOME"):
        answer = run("ask", question, "--json", env=env)
        assert answer.returncode == 0, answer.stderr
        assert CANARY not in answer.stdout
        sources = {s["url"].rsplit("/", 1)[-1] for s in json.loads(answer.stdout)["sources"]}
        assert sources <= {"travel.md", "vpn.md", "alias.md"}


def test_a_file_swapped_for_a_symlink_out_of_the_root_leaves_the_index(
    hostile_env: tuple[dict[str, str], dict[str, str], Path], tmp_path: Path
) -> None:
    env, _, root = hostile_env
    assert run("sync", "files", env=env).returncode == 0
    (root / "travel.md").unlink()
    (root / "travel.md").symlink_to(tmp_path / "outside" / "secret.txt")

    synced = run("sync", "files", env=env)  # incremental, as the scheduler runs it
    assert synced.returncode == 0, synced.stderr
    assert "1 deleted" in synced.stdout
    (files,) = json.loads(run("status", "--json", env=env).stdout)["sources"]
    assert files["documents"] == 2
    assert "outside FILES_PATH" in files["skipped"]["files:travel.md"]
    answer = run("ask", "deploy token", "--json", env=env)
    assert CANARY not in answer.stdout


def test_an_unsafe_acl_file_makes_its_folder_readable_by_nobody(tmp_path: Path) -> None:
    from connectors.base import Document
    from connectors.files import FilesConnector

    (tmp_path / "outside.acl").write_text("public\n")
    (tmp_path / "docs" / "hr").mkdir(parents=True)
    (tmp_path / "docs" / "hr" / ".acl").symlink_to(tmp_path / "outside.acl")
    (tmp_path / "docs" / "hr" / "bands.md").write_text("# Bands\n\nStaff: 100-150k\n")
    items = list(FilesConnector(tmp_path / "docs").poll(None))
    (bands,) = [item for item in items if isinstance(item, Document)]
    assert bands.acl == frozenset()


def test_a_document_that_parses_too_slowly_or_too_greedily_is_skipped() -> None:
    greedy = greedy_word_file()
    slow = (("<div>" * 2000 + "x" + "</div>" * 2000) * 200).encode()
    with IsolatedParser(ParseLimits(memory_bytes=256 * 1024 * 1024, seconds=120)) as parser:
        with pytest.raises(UnreadableDocument, match="memory"):
            parser.to_markdown(greedy, ".docx")
        # The next document gets a fresh parser and reads normally.
        assert parser.to_markdown(word_file(), ".docx").startswith("# Travel")
    with (
        IsolatedParser(ParseLimits(seconds=0.5)) as parser,
        pytest.raises(UnreadableDocument, match=r"longer than 0\.5 s"),
    ):
        parser.to_markdown(slow, ".html")


def test_a_document_too_long_to_embed_is_cut_and_reported(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    sections = "\n\n".join(f"## Step {n}\n\n" + "Restart the service. " * 120 for n in range(40))
    (docs / "runbook.md").write_text("# Runbook\n\n" + sections)
    env = {
        "RAGBOT_DATA_DIR": str(tmp_path / "data"),
        "FILES_PATH": str(docs),
        "RAGBOT_MAX_CHUNKS_PER_DOCUMENT": "3",
    }
    synced = run("sync", env=env)
    assert synced.returncode == 0, synced.stderr
    assert "(3 chunks embedded" in synced.stdout
    (files,) = json.loads(run("status", "--json", env=env).stdout)["sources"]
    assert files["chunks"] == 3
    assert "partly indexed" in files["skipped"]["files:runbook.md"]
