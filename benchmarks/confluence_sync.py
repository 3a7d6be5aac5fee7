"""Confluence incremental sync and deletion check at space scale, against the fake Cloud API.

Usage: python -m benchmarks.confluence_sync [--pages 5000] [--changed 10]

Counts API requests and pages embedded (the figures that matter for rate limits and cost). A
hashing embedder stands in for the model: what is embedded, not how fast, is measured here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.confluence import ConfluenceConfig, ConfluenceConnector
from connectors.confluence_client import ConfluenceClient
from tests.fakes.confluence_api import FakeConfluence, Page, Space
from tests.support import HashEmbedder
from workers.ingest.state import FileStateStore
from workers.ingest.sync import Syncer
from workers.rag.chunking import Chunker
from workers.rag.index_edge import EdgeIndex
from workers.rag.tokens import counter_for_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
    week_ago = datetime.now(UTC) - timedelta(days=7)
    fake = FakeConfluence(users={"acc-dana": "dana@acme.com"})
    fake.spaces["ENG"] = Space("ENG", "Engineering")
    for n in range(args.pages):
        fake.pages[str(n + 1)] = Page(
            str(n + 1),
            "ENG",
            f"Page {n}",
            f"<h2>Section</h2><p>Text of page {n}.</p>",
            when=week_ago + timedelta(seconds=n),
        )
    fake.start()
    with tempfile.TemporaryDirectory(prefix="ragbot-confluence-bench-") as tmp:
        embedder = HashEmbedder()
        index = EdgeIndex(Path(tmp) / "index", embedder.dim)
        syncer = Syncer(
            index,
            embedder,
            Chunker(counter_for_model("gpt-4o-mini")),
            FileStateStore(Path(tmp) / "state.json"),
        )
        client = ConfluenceClient(fake.url, username=fake.email, api_token=fake.token)
        source = ConfluenceConnector(client, ConfluenceConfig(org_domains=("acme.com",)))
        started = time.perf_counter()
        first = syncer.sync(source, prune=False)
        print(
            f"first sync: {first.indexed} pages, {client.requests} requests, "
            f"{time.perf_counter() - started:.1f} s"
        )

        for n in range(args.changed):
            fake.edit(
                str(n * 97 + 1),
                f"<p>Edited page {n}.</p>",
                when=datetime.now(UTC) - timedelta(minutes=2),
            )
        client.requests, embedder.passages_embedded = 0, 0
        started = time.perf_counter()
        report = syncer.sync(source, prune=False)
        print(
            f"incremental sync, {args.changed} of {args.pages} pages changed: "
            f"{client.requests} API requests, {report.indexed} pages re-embedded "
            f"({embedder.passages_embedded} chunks), {time.perf_counter() - started:.2f} s"
        )

        for n in range(5):
            fake.pages[str(n * 13 + 2)].status = "trashed"
        client.requests = 0
        started = time.perf_counter()
        check = syncer.sync(source, prune=True)
        print(
            f"deletion check of {args.pages} pages: {client.requests} API requests "
            f"(listing and the incremental window), {check.deleted} deleted, "
            f"{time.perf_counter() - started:.2f} s"
        )
        index.close()
    fake.stop()


if __name__ == "__main__":
    main()
