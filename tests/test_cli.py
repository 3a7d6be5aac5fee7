"""The `ragbot` command as a user runs it: a real process, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import HANDBOOK

RAGBOT = str(Path(sys.executable).parent / "ragbot")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()} | (env or {})
    return subprocess.run(
        [RAGBOT, *args], capture_output=True, text=True, env=full_env, timeout=300
    )


def test_ask_json_has_the_documented_shape(handbook_data_dir: Path) -> None:
    env = {
        "RAGBOT_DATA_DIR": str(handbook_data_dir),
        "FILES_PATH": str(HANDBOOK),
        "RAGBOT_ORG_DOMAINS": "acme.com",
    }
    result = run("ask", "How do I roll back a production deploy?", "--json", env=env)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {"answer", "abstained", "sources"} and payload["abstained"] is False
    source = payload["sources"][0]
    assert set(source) == {"n", "title", "url", "source", "updated_at"}
    assert source["n"] == 1 and source["title"] == "Deploying Services"
    assert source["url"].startswith("file://") and source["updated_at"].endswith("Z")
    assert "acme release rollback" in payload["answer"]

    text = run("ask", "How do I roll back a production deploy?", env=env)
    assert "Sources:" in text.stdout and "updated" in text.stdout


def test_sync_then_status_reports_counts_and_skipped_files(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Travel\n\nBook trains for trips under four hours.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 nonsense")
    env = {"RAGBOT_DATA_DIR": str(tmp_path / "data"), "FILES_PATH": str(docs)}

    synced = run("sync", env=env)
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith("files: 1 indexed, 0 unchanged, 0 deleted, 1 skipped")
    # Not a terminal: progress as plain lines on stderr, the first sync's size known up front.
    assert "files: syncing: 0 of about 2 documents" in synced.stderr
    again = run("sync", "files", env=env)
    assert "0 indexed" in again.stdout and "(0 chunks embedded" in again.stdout

    status = json.loads(run("status", "--json", env=env).stdout)
    (files,) = status["sources"]
    assert (files["source"], files["documents"], files["chunks"]) == ("files", 1, 1)
    assert files["last_success_at"] and files["last_error"] is None
    assert "files:broken.pdf" in files["skipped"]
    assert files["progress"] is None, "no sync is running"
    assert "skipped files:broken.pdf" in run("status", env=env).stdout


def test_operational_failures_exit_1_with_one_line(tmp_path: Path) -> None:
    env = {"RAGBOT_DATA_DIR": str(tmp_path / "data"), "FILES_PATH": str(tmp_path / "missing")}
    result = run("sync", env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not a readable folder" in result.stderr
    assert "Traceback" not in result.stderr

    bad_reader = run("ask", "anything", "--as", "not-an-email", env=env)
    assert bad_reader.returncode == 1 and "not an email address" in bad_reader.stderr

    no_sources = run("sync", env={"RAGBOT_DATA_DIR": str(tmp_path / "data")})
    assert no_sources.returncode == 1 and "no source is configured" in no_sources.stderr


def test_an_unreachable_llm_is_explained(handbook_data_dir: Path) -> None:
    env = {
        "RAGBOT_DATA_DIR": str(handbook_data_dir),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "RAGBOT_LLM_TIMEOUT_SECONDS": "2",
    }
    result = run("ask", "How long is parental leave?", env=env)
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == "ragbot: the language model could not be reached"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    env = {"RAGBOT_DATA_DIR": str(tmp_path)}
    assert run("ask", env=env).returncode == 2
    assert run("sync", "dropbox", env=env).returncode == 2
    assert run("ask", "  ", env=env).returncode == 2
    assert run("status", env={**env, "RAGBOT_CONTEXT_TOKENS": "lots"}).returncode == 2


def test_eval_prints_the_documented_metrics(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    queries = tmp_path / "queries.jsonl"
    rows = [
        {
            "id": "p1",
            "title": "Leave",
            "text": "Annual leave is 25 days after five years.",
            "url": "",
        },
        {"id": "p2", "title": "Travel", "text": "Hotels are reimbursed up to 180 EUR.", "url": ""},
        {"id": "p3", "title": "휴가", "text": "연차 휴가는 Workday에서 신청합니다.", "url": ""},
    ]
    corpus.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    questions = [
        {"id": "q1", "question": "How much annual leave after five years?", "gold": ["p1"]},
        {"id": "q2", "question": "hotel reimbursement limit", "gold": ["p2"]},
        {"id": "q3", "question": "연차 신청은 어디서 하나요?", "gold": ["p3"]},
    ]
    queries.write_text(
        "\n".join(json.dumps(q, ensure_ascii=False) for q in questions), encoding="utf-8"
    )

    def evaluate(corpus: Path, *options: str) -> subprocess.CompletedProcess[str]:
        files = ("--corpus", str(corpus), "--queries", str(queries))
        return run("eval", *files, *options, env={"RAGBOT_DATA_DIR": str(tmp_path / "data")})

    result = evaluate(corpus, "--mode", "all", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n"] == 3 and metrics["hit@5"] == metrics["hit@10"] == metrics["mrr@10"] == 1.0
    assert {"dense", "sparse", "hybrid"} <= set(metrics)
    assert metrics["hit@5"] == metrics["hybrid"]["hit@5"]

    sparse = json.loads(evaluate(corpus, "--mode", "sparse", "--json").stdout)
    assert "sparse" in sparse and "dense" not in sparse and "hybrid" not in sparse
    assert sparse["mrr@10"] == sparse["sparse"]["mrr@10"]

    broken = evaluate(queries)
    assert broken.returncode == 1 and "missing text" in broken.stderr


def test_teams_app_package_is_ready_to_upload(tmp_path: Path) -> None:
    app_id = "0b5c6a8e-1f2d-4c3b-9a7e-6d5f4e3c2b1a"
    out = tmp_path / "ragbot-teams.zip"
    result = run(
        "teams-app",
        "--endpoint",
        "https://ragbot.acme.com/api/messages",
        "--company",
        'Acme "Docs" Team',
        "--out",
        str(out),
        env={"MICROSOFT_APP_ID": app_id, "RAGBOT_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
        sizes = {
            name: struct.unpack(">II", package.read(name)[16:24])
            for name in ("color.png", "outline.png")
        }
    assert manifest["id"] == manifest["bots"][0]["botId"] == app_id
    assert manifest["validDomains"] == ["ragbot.acme.com"]
    assert manifest["developer"]["name"] == 'Acme "Docs" Team'
    assert set(manifest["bots"][0]["scopes"]) == {"personal", "team", "groupChat"}
    assert sizes == {"color.png": (192, 192), "outline.png": (32, 32)}

    bad = run(
        "teams-app",
        "--endpoint",
        "ragbot.acme.com",
        "--out",
        str(out),
        env={"MICROSOFT_APP_ID": "ragbot", "RAGBOT_DATA_DIR": str(tmp_path / "data")},
    )
    assert bad.returncode == 1 and "GUID" in bad.stderr and "Traceback" not in bad.stderr
