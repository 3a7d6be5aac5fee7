"""Resolving a 100-member conversation's readers: chat API calls and time, cold and warm.

Usage: python -m benchmarks.membership [--members N] [--rounds R] [--latency-ms L]

The fake Slack and Teams APIs run in a process of their own, each call taking `--latency-ms`
(default 50, a stand-in for the internet round trip, stated as such); the store is a scratch Redis
database (`REDIS_URL`, default the local one, database 14). Cold: nothing cached. Warm: the
members cached (the next question in the channel). After a join: the front door has started a
new generation, so the roster is read again but only the newcomer's account is looked up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from benchmarks.fake_process import spawn_fake
from workers.delivery.membership import forget, slack_scope, teams_scope
from workers.delivery.slack import SlackDelivery, make_web_client
from workers.delivery.teams import TeamsDelivery
from workers.delivery.teams_question import TeamsQuestion
from workers.kv import RedisKeyValue
from workers.settings import Settings

VARIANTS = ("Slack", "Slack, one lookup at a time", "Teams")
CHANNEL = "C0BENCH"
TEAM_CHANNEL = "19:bench000@thread.tacv2"

FAKES = """
import json, sys
from collections import Counter
from tests.fakes.slack_api import BOT_USER, FakeSlack
from tests.fakes.teams_api import FakeTeams, Member
n, latency = int(sys.argv[1]), float(sys.argv[2]) / 1000
users = {f"U{i:04d}": f"person{i}@acme.com" for i in range(n + 1)}
slack = FakeSlack(users=users, members={"C0BENCH": [BOT_USER, *list(users)[:n]]}, latency=latency)
slack.start()
people = [Member(f"29:{i}", f"aad-{i}", f"person{i}@acme.com", f"Person {i}") for i in range(n + 1)]
teams = FakeTeams(rosters={"19:bench000@thread.tacv2": people[:n]}, latency=latency).start()
print(slack.api_url, teams.service_url, flush=True)
for line in sys.stdin:
    if line.strip() == "join":
        slack.members["C0BENCH"].append(f"U{n:04d}")
        teams.rosters["19:bench000@thread.tacv2"].append(people[n])
        print("ok", flush=True)
    elif line.strip() == "calls":
        counts = Counter(m for m, _ in slack.calls)
        counts += Counter(p.split("/")[-1] for _, p in teams.calls)
        slack.calls.clear()
        teams.calls.clear()
        print(json.dumps(counts), flush=True)
"""


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    store_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14").rsplit("/", 1)[0] + "/14"
    client = redis.Redis.from_url(store_url)
    # One store prefix per variant, so each variant's cache is its own.
    stores = {name: RedisKeyValue(client, f"bench-{i}:") for i, name in enumerate(VARIANTS)}
    fakes, (slack_url, teams_url) = spawn_fake(FAKES, str(args.members), str(args.latency_ms))
    assert fakes.stdin is not None and fakes.stdout is not None

    def command(word: str) -> str:
        assert fakes.stdin is not None and fakes.stdout is not None
        fakes.stdin.write(word + "\n")
        fakes.stdin.flush()
        return fakes.stdout.readline().strip()

    slack = SlackDelivery(make_web_client("xoxb-test", slack_url), stores[VARIANTS[0]])
    one_by_one = SlackDelivery(
        make_web_client("xoxb-test", slack_url), stores[VARIANTS[1]], member_lookups=1
    )
    for delivery in (slack, one_by_one):
        delivery.bot_user_id  # noqa: B018 -- asked once per worker process, not per question
    teams = TeamsDelivery(Settings(ragbot_teams_dev=True), stores[VARIANTS[2]])
    question = TeamsQuestion(
        teams_url, "tenant", TEAM_CHANNEL, "channel", "1", "29:0", "aad-0", "28:bot", "ragbot", "q"
    )
    platforms: dict[str, tuple[Callable[[], Any], str]] = {
        VARIANTS[0]: (lambda: slack.members("T0001", CHANNEL), slack_scope("T0001", CHANNEL)),
        VARIANTS[1]: (lambda: one_by_one.members("T0001", CHANNEL), slack_scope("T0001", CHANNEL)),
        VARIANTS[2]: (lambda: teams.members(question), teams_scope("tenant", TEAM_CHANNEL)),
    }
    try:
        results: dict[str, dict[str, list[float]]] = {}
        calls: dict[str, dict[str, Any]] = {}
        command("calls")  # auth.test, once per worker process
        for _ in range(args.rounds):
            for name, (resolve, _) in platforms.items():
                client.flushdb()
                row = results.setdefault(name, {"cold": [], "warm": []})
                row["cold"].append(timed(resolve))
                calls.setdefault(f"{name} cold", json.loads(command("calls")))
                row["warm"].append(timed(resolve))
                calls.setdefault(f"{name} warm", json.loads(command("calls")))
        client.flushdb()
        for resolve, _ in platforms.values():
            resolve()  # the members before the join, cached
        command("join")
        command("calls")
        for name, (resolve, scope) in platforms.items():
            forget(stores[name], scope)  # what the front door does on a join event
            results[name]["after a join"] = [timed(resolve)]
            calls[f"{name} after a join"] = json.loads(command("calls"))
        for name, row in results.items():
            for phase, samples in row.items():
                print(
                    f"{name} {args.members} members, {phase}: median "
                    f"{statistics.median(samples):.1f} ms over {len(samples)}; API calls "
                    f"{calls[f'{name} {phase}']}"
                )
    finally:
        client.flushdb()
        fakes.stdin.close()
        fakes.wait(10)


if __name__ == "__main__":
    main()
