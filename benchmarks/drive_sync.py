"""Google Drive incremental sync and deletion check at scale, against the fake Drive v3 API.

Usage: python -m benchmarks.drive_sync [--files 5000] [--changed 10]

Counts API requests (token requests excluded) and files embedded: the figures that matter for
quota and cost. A hashing embedder stands in for the model: what is embedded, not how fast, is
measured. The files are one user's plain-text files plus a tenth Google Docs; the changes are
edits to both kinds and one sharing change.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from connectors.gdrive import DriveConfig, GoogleDriveConnector
from connectors.gdrive_client import GoogleClient, GoogleCredentials
from tests.fakes.drive_api import DOC, DriveFile, FakeDrive
from tests.support import HashEmbedder
from workers.ingest.state import FileStateStore
from workers.ingest.sync import Syncer
from workers.rag.chunking import Chunker
from workers.rag.index_edge import EdgeIndex
from workers.rag.tokens import counter_for_model

OWNER = "sam@acme.com"
DOMAIN = {"type": "domain", "role": "reader", "domain": "acme.com", "allowFileDiscovery": True}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
    fake = FakeDrive(users=[OWNER]).start()
    for n in range(args.files):
        kind, body = (
            (DOC, f"# File {n}\n\nText of file {n}.")
            if n % 10 == 0
            else (
                "text/plain",
                f"Text of file {n}.",
            )
        )
        fake.add(DriveFile(f"f{n}", f"File {n}", kind, body.encode(), OWNER, permissions=[DOMAIN]))
    with tempfile.TemporaryDirectory(prefix="ragbot-drive-bench-") as tmp:
        embedder = HashEmbedder()
        index = EdgeIndex(Path(tmp) / "index", embedder.dim)
        syncer = Syncer(
            index,
            embedder,
            Chunker(counter_for_model("gpt-4o-mini")),
            FileStateStore(Path(tmp) / "state"),
        )
        credentials = GoogleCredentials(fake.service_account_file(Path(tmp)), api_root=fake.url)
        source = GoogleDriveConnector(GoogleClient(credentials), DriveConfig(users=(OWNER,)))

        started = time.perf_counter()
        first = syncer.sync(source, prune=False)
        print(
            f"first sync: {first.indexed} files, {fake.api_calls()} API requests, "
            f"{time.perf_counter() - started:.1f} s"
        )

        for n in range(args.changed - 1):
            fake.edit(f"f{n * 97}", f"Edited file {n}.".encode())
        fake.share("f5", {"type": "user", "role": "reader", "emailAddress": "lee@acme.com"})
        before, embedder.passages_embedded = fake.api_calls(), 0
        started = time.perf_counter()
        report = syncer.sync(source, prune=False)
        print(
            f"incremental sync, {args.changed} of {args.files} files changed "
            f"({args.changed - 1} edits, 1 sharing change): {fake.api_calls() - before} API "
            f"requests, {report.indexed} files re-embedded ({embedder.passages_embedded} chunks), "
            f"{report.permissions_updated} ACL updated without re-embedding, "
            f"{time.perf_counter() - started:.2f} s"
        )

        for n in range(5):
            fake.files[f"f{n * 13 + 2}"].deleted = True  # gone without a change entry
        before = fake.api_calls()
        started = time.perf_counter()
        check = syncer.sync(source, prune=True)
        print(
            f"deletion check of {args.files} files: {fake.api_calls() - before} API requests "
            f"(listing and the change log), {check.deleted} deleted, "
            f"{time.perf_counter() - started:.2f} s"
        )
        index.close()
    fake.stop()


if __name__ == "__main__":
    main()
