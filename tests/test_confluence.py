"""The Confluence connector against a fake Confluence Cloud over loopback (real httpx client)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Checkpoint, ConnectorError, Document, Skipped
from connectors.confluence import ConfluenceConfig, ConfluenceConnector
from connectors.confluence_client import ConfluenceClient
from connectors.limits import ParseLimits
from tests.fakes.confluence_api import Attachment, ConfluenceFault, FakeConfluence, Page, Space
from tests.support import HashEmbedder, text_pdf
from tests.test_hostile_files import greedy_word_file, word_file
from workers.ingest.state import FileStateStore
from workers.ingest.sync import Syncer, SyncFailed
from workers.rag.chunking import Chunker
from workers.rag.index_edge import EdgeIndex
from workers.rag.tokens import counter_for_model

DAY_AGO = datetime.now(UTC) - timedelta(days=1)
RUNBOOK = """<h1>Rollback</h1><p>Roll back first, investigate later.</p>
<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter>
<ac:plain-text-body><![CDATA[acme release rollback --to previous]]></ac:plain-text-body>
</ac:structured-macro>
<ac:structured-macro ac:name="warning"><ac:rich-text-body><p>Post in #incidents.</p>
</ac:rich-text-body></ac:structured-macro>
<table><tbody><tr><th>Severity</th><th>Response</th></tr><tr><td>SEV1</td><td>15 minutes</td></tr>
</tbody></table><ac:structured-macro ac:name="toc"/>"""


@pytest.fixture
def fake() -> Iterator[FakeConfluence]:
    server = FakeConfluence(users={"acc-dana": "dana@acme.com", "acc-sam": "sam@acme.com"})
    server.spaces = {
        "ENG": Space("ENG", "Engineering"),
        "PUB": Space("PUB", "Public Docs", anonymous=True),
        "HR": Space("HR", "People", all_users=False, groups=["hr"]),
    }
    for n in range(100):
        server.pages[str(n + 1)] = Page(
            str(n + 1),
            "ENG",
            f"Note {n}",
            f"<p>Note number {n}.</p>",
            when=DAY_AGO + timedelta(seconds=n),
        )
    server.pages["1001"] = Page(
        "1001", "ENG", "Deploy runbook", RUNBOOK, when=DAY_AGO, labels=["runbook", "ops"]
    )
    server.pages["2001"] = Page(
        "2001", "ENG", "Salaries", "<p>Bands.</p>", when=DAY_AGO, restricted_users=["acc-dana"]
    )
    server.pages["2002"] = Page(
        "2002", "ENG", "Salary details", "<p>More.</p>", when=DAY_AGO, ancestors=["2001"]
    )
    server.pages["2003"] = Page(
        "2003",
        "ENG",
        "Salary review",
        "<p>Review.</p>",
        when=DAY_AGO,
        ancestors=["2001"],
        restricted_users=["acc-dana", "acc-sam"],
    )
    server.pages["3001"] = Page("3001", "PUB", "Press kit", "<p>Logos.</p>", when=DAY_AGO)
    server.pages["4001"] = Page("4001", "HR", "Payroll", "<p>Payday is the 25th.</p>", when=DAY_AGO)
    server.start()
    yield server
    server.stop()


def connector(fake: FakeConfluence, give_up: float = 30.0) -> ConfluenceConnector:
    client = ConfluenceClient(
        fake.url,
        username=fake.email,
        api_token=fake.token,
        give_up_after_seconds=give_up,
        sleep=lambda seconds: None,
    )
    return ConfluenceConnector(client, ConfluenceConfig(org_domains=("acme.com",), page_size=25))


def documents(items: list[object]) -> dict[str, Document]:
    return {i.id: i for i in items if isinstance(i, Document)}


def test_pages_become_documents_with_structure_links_and_labels(fake: FakeConfluence) -> None:
    items = list(connector(fake).poll(None))
    docs = documents(items)
    assert len(docs) == 106 and isinstance(items[-1], Checkpoint)
    assert fake.count("/content/search") >= 5, "followed _links.next across pages"
    runbook = docs["confluence:1001"]
    assert runbook.url == fake.url + "/spaces/ENG/pages/1001"
    assert "```bash\nacme release rollback --to previous\n```" in runbook.text
    assert "| SEV1 | 15 minutes |" in runbook.text and "**Warning:**" in runbook.text
    assert runbook.breadcrumbs == ("Engineering",) and runbook.labels == ("runbook", "ops")
    assert runbook.places == ("ENG",), "the space key is the page's place for channel scopes"
    assert runbook.version == "1" and runbook.updated_at.tzinfo is not None
    assert docs["confluence:2002"].breadcrumbs == ("Engineering", "Salaries")


def test_readers_follow_restrictions_inheritance_and_space_permissions(
    fake: FakeConfluence,
) -> None:
    docs = documents(list(connector(fake).poll(None)))
    assert docs["confluence:1001"].acl == {"domain:acme.com"}
    assert "public" in docs["confluence:3001"].acl, "an anonymous-readable space"
    assert docs["confluence:4001"].acl == {"group:confluence:hr"}
    assert docs["confluence:2001"].acl == {"user:dana@acme.com"}, "hidden email resolved"
    assert docs["confluence:2002"].acl == {"user:dana@acme.com"}, "inherited from its parent"
    assert docs["confluence:2003"].acl == {"user:dana@acme.com"}, "must pass both levels"


def test_a_failed_permission_lookup_fails_closed_and_is_reported(fake: FakeConfluence) -> None:
    fake.faults = [ConfluenceFault("/space/HR", 403)]
    items = list(connector(fake).poll(None))
    assert documents(items)["confluence:4001"].acl == frozenset()
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert [s.id for s in skipped] == ["confluence:4001"] and "visible to nobody" in skipped[
        0
    ].reason


def test_rate_limits_and_server_errors_are_retried(fake: FakeConfluence) -> None:
    fake.faults = [
        ConfluenceFault("/content/search", 429, retry_after="3"),
        ConfluenceFault("/content/search", 500),
    ]
    docs = documents(list(connector(fake).poll(None)))
    assert len(docs) == 106
    searches = [p for p in fake.requests if "/content/search" in p]
    assert "limit=25" in searches[0] and "limit=12" in searches[2], "halved after a 5xx"


def test_an_outage_is_a_connector_error(fake: FakeConfluence) -> None:
    fake.faults = [ConfluenceFault("/content/search", 503)] * 50
    with pytest.raises(ConnectorError, match="kept failing"):
        list(connector(fake, give_up=0.0).poll(None))
    fake.faults = []
    wrong = ConfluenceClient(fake.url, username=fake.email, api_token="revoked")
    with pytest.raises(ConnectorError, match="refused the credentials"):
        list(ConfluenceConnector(wrong, ConfluenceConfig()).poll(None))


@pytest.fixture
def syncer(tmp_path: Path) -> Iterator[tuple[Syncer, HashEmbedder, EdgeIndex]]:
    embedder = HashEmbedder()
    index = EdgeIndex(tmp_path / "index", embedder.dim)
    state = FileStateStore(tmp_path / "state.json")
    yield Syncer(index, embedder, Chunker(counter_for_model("gpt-4o-mini")), state), embedder, index
    index.close()


def test_edits_and_deletions_reach_the_index_incrementally(
    fake: FakeConfluence, syncer: tuple[Syncer, HashEmbedder, EdgeIndex]
) -> None:
    sync, embedder, index = syncer
    source = connector(fake)
    assert sync.sync(source).indexed == 106
    fake.edit("1001", "<p>New rollback steps.</p>", when=datetime.now(UTC) - timedelta(minutes=2))
    fake.pages["3001"].status = "trashed"
    fake.requests.clear()
    embedder.passages_embedded = 0

    report = sync.sync(source)
    assert report.indexed == 1 and embedder.passages_embedded == 1 and report.deleted == 1
    assert index.document_versions("confluence")["confluence:1001"] == {"2"}
    assert "confluence:3001" not in index.document_versions("confluence")
    bodies = [p for p in fake.requests if "/content/search" in p and "expand=" in p]
    assert len(bodies) == 1, "the incremental window asks for the changed page only"


def test_a_crash_mid_sync_resumes_without_loss(
    fake: FakeConfluence, syncer: tuple[Syncer, HashEmbedder, EdgeIndex]
) -> None:
    sync, _, index = syncer
    fake.faults = [ConfluenceFault("cursor=", 500)] * 20
    with pytest.raises(SyncFailed):
        sync.sync(connector(fake, give_up=0.0))
    assert 0 < len(index.document_versions("confluence")) < 106
    fake.faults = []
    report = sync.sync(connector(fake))
    versions = index.document_versions("confluence")
    assert len(versions) == 106 and all(len(v) == 1 for v in versions.values())
    assert report.unchanged > 0


def test_data_center_with_a_context_path_and_a_personal_token(fake: FakeConfluence) -> None:
    fake.pat, fake.context = "dc-personal-token", "/confluence"
    client = ConfluenceClient(fake.url, personal_token="dc-personal-token", sleep=lambda s: None)
    source = ConfluenceConnector(client, ConfluenceConfig(org_domains=("acme.com",), page_size=25))
    items = list(source.poll(None))
    docs = documents(items)
    assert len(docs) == 106 and fake.count("start=25") == 1
    assert docs["confluence:1001"].url.endswith("/confluence/spaces/ENG/pages/1001")
    assert docs["confluence:1001"].acl == {"domain:acme.com"}
    # Data Center hides emails: a page restricted to named users stays invisible, and says so.
    assert docs["confluence:2001"].acl == frozenset()
    assert any(isinstance(i, Skipped) and i.id == "confluence:2001" for i in items)
    assert sorted(source.list_ids())[:2] == ["confluence:1", "confluence:10"]


def test_deletions_are_checked_only_when_asked(
    fake: FakeConfluence, syncer: tuple[Syncer, HashEmbedder, EdgeIndex]
) -> None:
    sync, _, index = syncer
    source = connector(fake)
    assert not source.listing_is_cheap
    sync.sync(source)
    fake.pages["4001"].status = "trashed"
    fake.requests.clear()
    assert sync.sync(source, prune=False).deleted == 0
    assert "confluence:4001" in index.document_versions("confluence")
    listing = [p for p in fake.requests if "/content/search" in p and "expand=" not in p]
    assert listing == [], "the frequent sync lists nothing"
    assert sync.sync(source, prune=True).deleted == 1
    assert "confluence:4001" not in index.document_versions("confluence")


def test_attachments_are_documents_behind_a_redirect_without_our_credentials(
    fake: FakeConfluence, syncer: tuple[Syncer, HashEmbedder, EdgeIndex]
) -> None:
    fake.pages["2001"].attachments = [
        Attachment(
            "att9001", "bands.pdf", text_pdf(["Staff Engineer band: 92,000 to 118,000 EUR"])
        ),
        Attachment("att9002", "logo.png", b"\x89PNG"),
        Attachment("att9003", "export.txt", b"x" * 5000),
    ]
    client = ConfluenceClient(fake.url, username=fake.email, api_token=fake.token)
    source = ConfluenceConnector(
        client, ConfluenceConfig(org_domains=("acme.com",), max_attachment_bytes=4096)
    )
    items = list(source.poll(None))
    docs = documents(items)
    pdf = docs["confluence:att9001"]
    assert "92,000 to 118,000" in pdf.text and pdf.title == "bands.pdf (Salaries)"
    assert pdf.acl == docs["confluence:2001"].acl == {"user:dana@acme.com"}
    assert pdf.breadcrumbs == ("Engineering", "Salaries")
    assert "confluence:att9002" not in docs
    assert any(isinstance(i, Skipped) and i.id == "confluence:att9003" for i in items)
    assert fake.media_requests and all(auth is None for _, auth in fake.media_requests)

    sync, _, index = syncer
    sync.sync(source)
    assert "confluence:att9001" in index.document_versions("confluence")
    fake.pages["2001"].attachments = []
    sync.sync(source, prune=True)
    assert "confluence:att9001" not in index.document_versions("confluence")


def test_an_attachment_that_exhausts_its_parser_is_skipped_and_the_page_kept(
    fake: FakeConfluence,
) -> None:
    fake.pages["2001"].attachments = [
        Attachment("att9100", "greedy.docx", greedy_word_file()),
        Attachment("att9101", "travel.docx", word_file()),
    ]
    client = ConfluenceClient(fake.url, username=fake.email, api_token=fake.token)
    limits = ParseLimits(memory_bytes=256 * 1024 * 1024)  # parsed in a child process
    source = ConfluenceConnector(client, ConfluenceConfig(org_domains=("acme.com",), parse=limits))
    items = list(source.poll(None))
    skipped = {i.id: i.reason for i in items if isinstance(i, Skipped)}
    assert "memory" in skipped["confluence:att9100"]
    docs = documents(items)
    assert "Book trains" in docs["confluence:att9101"].text, "the next attachment reads normally"
    assert "confluence:2001" in docs


def test_group_members_get_group_restricted_pages_as_readers(
    fake: FakeConfluence, tmp_path: Path
) -> None:
    from workers.runtime import Runtime
    from workers.settings import Settings

    fake.groups = {"hr": ["acc-dana"]}
    embedder = HashEmbedder()
    index = EdgeIndex(tmp_path / "index", embedder.dim)
    state = FileStateStore(tmp_path / "data" / "sync-state.json")
    sync = Syncer(index, embedder, Chunker(counter_for_model("gpt-4o-mini")), state)
    sync.sync(connector(fake), prune=True)
    index.close()
    assert state.load("confluence").memberships == {"dana@acme.com": ["group:confluence:hr"]}

    settings = Settings(ragbot_data_dir=tmp_path / "data", confluence_url=fake.url)
    with Runtime(settings) as runtime:
        assert "group:confluence:hr" in runtime.reader("Dana@acme.com")
        assert "group:confluence:hr" not in runtime.reader("sam@acme.com")


def test_ragbot_sync_confluence_from_the_command_line(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    fake = FakeConfluence(users={"acc-dana": "dana@acme.com"})
    fake.spaces = {"ENG": Space("ENG", "Engineering"), "HR": Space("HR", "People", all_users=False)}
    fake.pages["1"] = Page("1", "ENG", "Deploy runbook", RUNBOOK, when=DAY_AGO)
    fake.pages["2"] = Page("2", "HR", "Payroll", "<p>Payday is the 25th.</p>", when=DAY_AGO)
    fake.start()
    try:
        env = {
            **os.environ,
            "RAGBOT_DATA_DIR": str(tmp_path),
            "CONFLUENCE_URL": fake.url,
            "CONFLUENCE_USERNAME": fake.email,
            "CONFLUENCE_API_TOKEN": fake.token,
            "CONFLUENCE_SPACES": "ENG",
            "RAGBOT_ORG_DOMAINS": "acme.com",
        }
        for name in ("REDIS_URL", "QDRANT_URL", "OPENAI_API_KEY", "FILES_PATH"):
            env.pop(name, None)
        ragbot = str(Path(sys.executable).parent / "ragbot")
        synced = subprocess.run(
            [ragbot, "sync", "confluence"], env=env, capture_output=True, text=True, timeout=300
        )
        assert synced.returncode == 0, synced.stderr
        assert synced.stdout.startswith("confluence: 1 indexed"), "only the configured space"
        asked = subprocess.run(
            [ragbot, "ask", "How do I roll back?", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        source = json.loads(asked.stdout)["sources"][0]
        assert source["source"] == "confluence" and source["url"].endswith("/pages/1")
        env["CONFLUENCE_API_TOKEN"] = "revoked"
        refused = subprocess.run(
            [ragbot, "sync", "confluence"], env=env, capture_output=True, text=True, timeout=300
        )
        assert refused.returncode == 1 and "refused the credentials" in refused.stderr
    finally:
        fake.stop()


RELEASES = (
    "<h1>Fleet releases</h1><p>Every release is announced in\n#fleet-releases. To ship one, run:"
    '</p><ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash'
    "</ac:parameter><ac:plain-text-body><![CDATA[fleet release --channel stable]]>"
    "</ac:plain-text-body></ac:structured-macro>"
)


def test_an_edit_just_before_a_reindex_is_in_the_next_answer(tmp_path: Path) -> None:
    """An admin edits a page and reindexes at once, in the same minute, from the command line."""
    import json
    import os
    import subprocess
    import sys

    fake = FakeConfluence(users={})
    fake.spaces = {"ENG": Space("ENG", "Engineering")}
    fake.pages["1"] = Page("1", "ENG", "Fleet releases", "<p>Ask the fleet team.</p>", when=DAY_AGO)
    fake.start()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "OPENAI_API_KEY")},
        "RAGBOT_DATA_DIR": str(tmp_path),
        "CONFLUENCE_URL": fake.url,
        "CONFLUENCE_USERNAME": fake.email,
        "CONFLUENCE_API_TOKEN": fake.token,
        "RAGBOT_ORG_DOMAINS": "acme.com",
    }
    ragbot = str(Path(sys.executable).parent / "ragbot")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([ragbot, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done

    try:
        run("sync", "confluence")
        fake.edit("1", RELEASES)  # now: the current minute
        assert run("sync", "confluence").stdout.startswith("confluence: 1 indexed")
        answer = json.loads(run("ask", "How do I ship a fleet release?", "--json").stdout)
        assert "fleet release --channel stable" in answer["answer"]
        assert "#fleet-releases" in answer["answer"]
    finally:
        fake.stop()
