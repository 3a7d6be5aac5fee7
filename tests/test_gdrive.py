"""The Google Drive connector: google-api-python-client against a fake Drive v3 over loopback."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import docx
import pytest
from openpyxl import Workbook

from connectors.base import ConnectorError, Deleted, Document, PollItem, Skipped
from connectors.gdrive import DriveConfig, GoogleDriveConnector
from connectors.gdrive_client import GoogleClient, GoogleCredentials
from connectors.limits import ParseLimits
from tests.fakes.drive_api import DOC, FOLDER, SHEET, SHORTCUT, SLIDES, DriveFile, FakeDrive, Fault
from tests.processes import RAGBOT
from tests.support import HashEmbedder, text_pdf
from tests.test_hostile_files import greedy_word_file
from workers.ingest.state import FileStateStore
from workers.ingest.sync import Syncer, SyncFailed
from workers.rag.audience import Audience
from workers.rag.chunking import Chunker
from workers.rag.embed import EmbeddingError, Vectors
from workers.rag.index_edge import EdgeIndex
from workers.rag.retrieve import Retriever
from workers.rag.tokens import counter_for_model

SAM, DANA, LEE = "sam@acme.com", "dana@acme.com", "lee@acme.com"
DRIVE = "0AENGDRIVE"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DOMAIN_READER = {
    "type": "domain",
    "role": "reader",
    "domain": "acme.com",
    "allowFileDiscovery": True,
}


def xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Budget"
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def word(text: str) -> bytes:
    document = docx.Document()
    document.add_heading("Onboarding", level=1)
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeDrive]:
    drive = FakeDrive(
        users=[SAM, DANA],
        drives={DRIVE: {"name": "Engineering", "members": [SAM, DANA]}},
        groups={"hr@acme.com": [DANA]},
    )
    files = [
        DriveFile(
            "leave",
            "Leave policy",
            DOC,
            b"# Leave\n\nParental leave is 16 weeks.",
            SAM,
            permissions=[DOMAIN_READER],
            parents=["folder"],
        ),
        DriveFile(
            "budget",
            "Budget 2027",
            SHEET,
            xlsx([["Team", "Budget"], ["Platform", 120000]]),
            SAM,
            permissions=[{"type": "group", "role": "reader", "emailAddress": "hr@acme.com"}],
        ),
        DriveFile(
            "kickoff",
            "Kickoff deck",
            SLIDES,
            b"Kickoff\nWe ship the search beta in March.",
            SAM,
            permissions=[{"type": "anyone", "role": "reader", "allowFileDiscovery": False}],
        ),
        DriveFile(
            "runbook",
            "Runbook.pdf",
            PDF,
            text_pdf(["Rollback: acme release rollback"]),
            drive_id=DRIVE,
            parents=["ops"],
        ),
        DriveFile("ops", "Ops", FOLDER, drive_id=DRIVE, parents=["oncall"]),
        DriveFile("oncall", "On-call", FOLDER, drive_id=DRIVE, parents=[DRIVE]),
        DriveFile(
            "onboard",
            "Onboarding.docx",
            DOCX,
            word("Laptops arrive on day one."),
            DANA,
            permissions=[{"type": "user", "role": "reader", "emailAddress": SAM}],
        ),
        DriveFile(
            "press",
            "Press kit",
            DOC,
            b"# Press\n\nLogos are in the brand folder.",
            SAM,
            permissions=[{"type": "anyone", "role": "reader", "allowFileDiscovery": True}],
        ),
        DriveFile("folder", "Team folder", FOLDER, owner=SAM, parents=["root-of-sam"]),
        DriveFile("shortcut", "Leave (shortcut)", SHORTCUT, owner=SAM, shortcut_target="leave"),
        DriveFile("video", "All hands.mp4", "video/mp4", b"\0" * 100, SAM),
        DriveFile("huge", "Scans.pdf", PDF, b"%PDF" + b"\0" * (21 * 1024 * 1024), SAM),
        DriveFile("bigdoc", "Logbook", DOC, b"# Log", SAM, export_size=11 * 1024 * 1024),
        DriveFile(
            "locked", "Contract.pdf", PDF, text_pdf(["Confidential"]), SAM, can_download=False
        ),
    ]
    files += [
        DriveFile(f"note{n}", f"Note {n}", "text/plain", f"Note number {n}.".encode(), SAM)
        for n in range(25)
    ]
    drive.start()
    for file in files:
        drive.add(file)
    yield drive
    drive.stop()


def connector(
    fake: FakeDrive,
    folder: Path,
    users: Sequence[str] = (SAM, DANA),
    drives: Sequence[str] = (DRIVE,),
) -> GoogleDriveConnector:
    credentials = GoogleCredentials(fake.service_account_file(folder), api_root=fake.url)
    config = DriveConfig(users=tuple(users), drive_ids=tuple(drives), admin_user=SAM, page_size=10)
    return GoogleDriveConnector(GoogleClient(credentials), config)


def documents(items: list[PollItem]) -> dict[str, Document]:
    return {i.id: i for i in items if isinstance(i, Document)}


def test_every_kind_of_file_becomes_a_document_with_its_link_and_sharing(
    fake: FakeDrive, tmp_path: Path
) -> None:
    items = list(connector(fake, tmp_path).poll(None))
    docs = documents(items)
    assert "# Leave" in docs["gdrive:leave"].text, "Docs keep their headings"
    assert "| Platform | 120000 |" in docs["gdrive:budget"].text
    assert "search beta in March" in docs["gdrive:kickoff"].text
    assert "acme release rollback" in docs["gdrive:runbook"].text
    assert "Laptops arrive on day one." in docs["gdrive:onboard"].text
    assert docs["gdrive:leave"].url == "https://docs.google.com/open?id=leave"
    assert docs["gdrive:runbook"].breadcrumbs == ("Google Drive", "Engineering")
    # Places for channel scopes: the shared drive, then each folder down to the file's.
    assert docs["gdrive:runbook"].places == (DRIVE, "oncall", "ops")
    assert docs["gdrive:leave"].places == ("root-of-sam", "folder"), "ends where reach ends"
    assert docs["gdrive:press"].places == ()
    assert len([d for d in docs if d.startswith("gdrive:note")]) == 25
    assert not {"gdrive:folder", "gdrive:shortcut", "gdrive:video"} & docs.keys()
    skipped = {i.id: i.reason for i in items if isinstance(i, Skipped)}
    assert "larger than 20 MB" in skipped["gdrive:huge"]
    assert "too large to export" in skipped["gdrive:bigdoc"]
    assert "disabled downloading" in skipped["gdrive:locked"]
    assert fake.api_calls("files.list") > 3, "followed nextPageToken"


def test_a_file_that_exhausts_its_parser_is_skipped_and_the_rest_kept(
    fake: FakeDrive, tmp_path: Path
) -> None:
    fake.add(DriveFile("greedy", "Greedy.docx", DOCX, greedy_word_file(), SAM))
    credentials = GoogleCredentials(fake.service_account_file(tmp_path), api_root=fake.url)
    limits = ParseLimits(memory_bytes=256 * 1024 * 1024)  # parsed in a child process
    config = DriveConfig(users=(SAM, DANA), drive_ids=(DRIVE,), admin_user=SAM, parse=limits)
    items = list(GoogleDriveConnector(GoogleClient(credentials), config).poll(None))
    skipped = {i.id: i.reason for i in items if isinstance(i, Skipped)}
    assert "memory" in skipped["gdrive:greedy"]
    docs = documents(items)
    assert "Laptops arrive on day one." in docs["gdrive:onboard"].text


def test_sharing_becomes_principals(fake: FakeDrive, tmp_path: Path) -> None:
    docs = documents(list(connector(fake, tmp_path).poll(None)))
    assert docs["gdrive:leave"].acl == {"user:sam@acme.com", "domain:acme.com"}
    assert docs["gdrive:budget"].acl == {"user:sam@acme.com", "group:google:hr@acme.com"}
    assert docs["gdrive:kickoff"].acl == {"user:sam@acme.com"}, "link-only is not public"
    assert docs["gdrive:press"].acl == {"user:sam@acme.com", "public"}
    assert docs["gdrive:onboard"].acl == {"user:dana@acme.com", "user:sam@acme.com"}
    assert docs["gdrive:runbook"].acl == {"user:sam@acme.com", "user:dana@acme.com"}
    assert fake.api_calls("permissions.list") >= 1, "shared-drive items need permissions.list"


def test_unreadable_sharing_fails_closed_and_is_reported(fake: FakeDrive, tmp_path: Path) -> None:
    fake.faults = [Fault("/files/runbook/permissions", 403, "insufficientFilePermissions")]
    items = list(connector(fake, tmp_path).poll(None))
    assert Deleted("gdrive:runbook") in items and "gdrive:runbook" not in documents(items)
    assert any(isinstance(i, Skipped) and i.id == "gdrive:runbook" for i in items)


def test_quota_errors_are_retried_with_backoff(fake: FakeDrive, tmp_path: Path) -> None:
    fake.faults = [
        Fault("/drive/v3/files", 403, "userRateLimitExceeded"),
        Fault("/drive/v3/files", 429, "rateLimitExceeded"),
    ]
    docs = documents(list(connector(fake, tmp_path).poll(None)))
    assert "gdrive:leave" in docs and not fake.faults


def test_bad_credentials_are_a_connector_error(fake: FakeDrive, tmp_path: Path) -> None:
    stranger = FakeDrive()  # a key the fake Drive never issued
    credentials = GoogleCredentials(stranger.service_account_file(tmp_path), api_root=fake.url)
    drive = GoogleDriveConnector(GoogleClient(credentials), DriveConfig(users=(SAM,)))
    with pytest.raises(ConnectorError, match="credentials"):
        list(drive.poll(None))


class FailingEmbedder(HashEmbedder):
    """Stops working after some passages, like a worker killed mid-sync."""

    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.fail_after = fail_after

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        if self.passages_embedded + len(texts) > self.fail_after:
            raise EmbeddingError("the embedding model went away")
        return super().embed_passages(texts)


def syncer(tmp_path: Path, embedder: HashEmbedder, index: EdgeIndex) -> Syncer:
    chunker = Chunker(counter_for_model("gpt-4o-mini"), max_tokens=200, target_tokens=150)
    return Syncer(index, embedder, chunker, FileStateStore(tmp_path / "state"))


def test_changes_update_the_index_and_sharing_changes_cost_no_download(
    fake: FakeDrive, tmp_path: Path
) -> None:
    index = EdgeIndex(tmp_path / "index", HashEmbedder.dim)
    drive = connector(fake, tmp_path)
    syncer(tmp_path, HashEmbedder(), index).sync(drive, prune=False)

    fake.edit("leave", b"# Leave\n\nParental leave is 20 weeks.")
    fake.trash("kickoff")
    fake.delete("onboard")
    fake.share("budget", {"type": "user", "role": "reader", "emailAddress": LEE})
    exports, downloads = fake.api_calls("files.export"), fake.api_calls("files.download")
    embedder = HashEmbedder()
    report = syncer(tmp_path, embedder, index).sync(drive, prune=False)

    assert (report.indexed, report.deleted, report.permissions_updated) == (1, 2, 1)
    assert fake.api_calls("files.export") - exports == 1, "only the edited Doc is exported"
    assert fake.api_calls("files.download") == downloads
    versions = index.document_versions("gdrive")
    assert "gdrive:kickoff" not in versions and "gdrive:onboard" not in versions
    retriever = Retriever(embedder, index)
    hits = retriever.search("Platform budget", Audience.of({"user:lee@acme.com"}), limit=5).hits
    assert [h.document_id for h in hits] == ["gdrive:budget"]
    leave = retriever.search("parental leave weeks", Audience.of({"domain:acme.com"}), limit=5).hits
    assert "20 weeks" in leave[0].text
    index.close()


def test_losing_access_removes_the_file_unless_someone_else_still_sees_it(
    fake: FakeDrive, tmp_path: Path
) -> None:
    index = EdgeIndex(tmp_path / "index", HashEmbedder.dim)
    drive = connector(fake, tmp_path, users=(SAM,), drives=())
    syncer(tmp_path, HashEmbedder(), index).sync(drive, prune=False)
    assert "gdrive:onboard" in index.document_versions("gdrive")
    fake.unshare("onboard", SAM)  # Dana's file, no longer shared with the only indexed user
    syncer(tmp_path, HashEmbedder(), index).sync(drive, prune=False)
    assert "gdrive:onboard" not in index.document_versions("gdrive")
    index.close()


def test_a_crash_mid_sync_resumes_from_the_last_token_and_loses_nothing(
    fake: FakeDrive, tmp_path: Path
) -> None:
    index = EdgeIndex(tmp_path / "index", HashEmbedder.dim)
    drive = connector(fake, tmp_path)
    syncer(tmp_path, HashEmbedder(), index).sync(drive, prune=False)
    for n in range(25):
        fake.edit(f"note{n}", f"Note number {n}, revised.".encode())

    with pytest.raises(SyncFailed, match="embedding model"):
        syncer(tmp_path, FailingEmbedder(fail_after=15), index).sync(drive, prune=False)
    embedder = HashEmbedder()
    report = syncer(tmp_path, embedder, index).sync(drive, prune=False)

    assert report.indexed < 25, "resumed after the pages already written"
    retriever = Retriever(embedder, index)
    for n in range(25):
        hits = retriever.search(
            f"Note number {n} revised", Audience.of({"user:sam@acme.com"}), limit=3
        ).hits
        assert any("revised" in h.text for h in hits if h.document_id == f"gdrive:note{n}"), n
    index.close()


def test_pruning_and_group_memberships(fake: FakeDrive, tmp_path: Path) -> None:
    index = EdgeIndex(tmp_path / "index", HashEmbedder.dim)
    drive = connector(fake, tmp_path)
    state = FileStateStore(tmp_path / "state")
    syncer(tmp_path, HashEmbedder(), index).sync(drive, prune=True)
    assert state.load("gdrive").memberships == {DANA: ["group:google:hr@acme.com"]}
    fake.files["press"].deleted = True  # gone without a change entry: only a listing notices
    report = syncer(tmp_path, HashEmbedder(), index).sync(drive, prune=True)
    assert report.deleted == 1 and "gdrive:press" not in index.document_versions("gdrive")
    index.close()


def test_sync_from_the_command_line(fake: FakeDrive, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()} | {
        "GOOGLE_SERVICE_ACCOUNT_FILE": str(fake.service_account_file(tmp_path)),
        "GOOGLE_IMPERSONATE": f"{SAM},{DANA}",
        "GOOGLE_DRIVE_IDS": DRIVE,
        "GOOGLE_API_URL": fake.url,
        "RAGBOT_DATA_DIR": str(tmp_path / "data"),
        "RAGBOT_ORG_DOMAINS": "acme.com",
    }
    synced = subprocess.run(
        [RAGBOT, "sync", "gdrive"], env=env, capture_output=True, text=True, timeout=300
    )
    assert synced.returncode == 0, synced.stderr
    assert "gdrive:" in synced.stdout and "skipped" in synced.stdout
    asked = subprocess.run(
        [RAGBOT, "ask", "--as", DANA, "How long is parental leave?", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert asked.returncode == 0, asked.stderr
    assert '"source": "gdrive"' in asked.stdout and "docs.google.com" in asked.stdout
    status = subprocess.run(
        [RAGBOT, "status"], env=env, capture_output=True, text=True, timeout=300
    )
    assert "gdrive" in status.stdout and "too large to export" in status.stdout


def test_oauth_user_credentials_index_that_users_files(fake: FakeDrive, tmp_path: Path) -> None:
    fake.oauth_user = DANA
    authorized = tmp_path / "authorized-user.json"
    authorized.write_text(
        '{"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",'
        ' "client_secret": "csecret", "refresh_token": "refresh-1"}'
    )
    credentials = GoogleCredentials(oauth_user_file=authorized, api_root=fake.url)
    drive = GoogleDriveConnector(GoogleClient(credentials), DriveConfig())
    docs = documents(list(drive.poll(None)))
    # Her own file, her shared drive's, and one shared with a group she is in.
    assert set(docs) == {"gdrive:onboard", "gdrive:runbook", "gdrive:budget"}
    assert fake.api_calls("token") >= 1


def test_a_rejected_change_log_position_lists_the_corpus_again(
    fake: FakeDrive, tmp_path: Path
) -> None:
    index = EdgeIndex(tmp_path / "index", HashEmbedder.dim)
    drive = connector(fake, tmp_path, users=(SAM,), drives=())
    state = FileStateStore(tmp_path / "state")
    syncer(tmp_path, HashEmbedder(), index).sync(drive, prune=False)
    saved = state.load("gdrive")
    saved.checkpoint = '{"user:sam@acme.com": "999999"}'  # a position Drive no longer accepts
    state.save("gdrive", saved)
    fake.edit("leave", b"# Leave\\n\\nParental leave is 20 weeks.")
    embedder = HashEmbedder()
    report = syncer(tmp_path, embedder, index).sync(drive, prune=False)
    assert report.indexed == 1 and report.unchanged > 20, "listed again; only the edit embedded"
    assert state.load("gdrive").checkpoint != saved.checkpoint
    index.close()
