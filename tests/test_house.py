"""The house's shape where import rules cannot see it: what a running front door has loaded."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "qdrant_edge", "qdrant_client", "googleapiclient", "openai", "pypdf")

PROBE = """
import json, sys
from bot.server import create_app
from workers.settings import Settings

settings = Settings(
    redis_url=sys.argv[1],
    slack_bot_token="xoxb-test",
    slack_signing_secret="secret",
    microsoft_app_id="00000000-0000-0000-0000-000000000001",
    microsoft_app_password="password",
    microsoft_app_tenant_id="tenant",
    files_path=".",
    confluence_url="https://confluence.example.com",
    google_service_account_file="missing.json",
)
create_app(settings)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2].split(","))))
"""


def test_the_front_door_loads_no_model_index_or_source_client(redis_url: str) -> None:
    """With Slack, Teams and every source configured, the HTTP front door (which hands all work
    to the workers through Redis) has loaded none of the pipeline's heavy parts."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, redis_url, ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
