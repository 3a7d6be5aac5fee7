"""A source's sync lock lives exactly as long as the worker holding it (real Redis)."""

from __future__ import annotations

import subprocess
import sys
import time

import redis

from tests.processes import wait_for
from workers.lease import Lease

NAME = "ragbot:lock:sync:files"
HOLDER = """
import sys, time
import redis
from workers.lease import Lease
with Lease(redis.Redis.from_url(sys.argv[1]), sys.argv[2], seconds=1.0) as held:
    print("held" if held else "refused", flush=True)
    time.sleep(600)
"""


def test_a_living_holder_keeps_its_lease_past_the_lease_time(redis_db: str) -> None:
    client = redis.Redis.from_url(redis_db)
    with Lease(client, NAME, seconds=1.0) as held:
        assert held
        time.sleep(2.5)  # more than twice the lease: only renewal keeps it
        with Lease(client, NAME, seconds=1.0) as second:
            assert not second, "a second sync of the source is refused"
    with Lease(client, NAME, seconds=1.0) as after:
        assert after, "released when the holder is done"


def test_a_killed_holder_frees_the_source_within_the_lease(redis_db: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_db, NAME], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        client = redis.Redis.from_url(redis_db)
        with Lease(client, NAME, seconds=1.0) as while_alive:
            assert not while_alive
        holder.kill()  # kill -9: no release, no more renewals
        holder.wait(10)

        def free() -> bool:
            with Lease(client, NAME, seconds=1.0) as held:
                return held

        wait_for(free, 10, "the lease to lapse")  # not 6 hours, as the fixed lock's timeout
    finally:
        if holder.poll() is None:
            holder.kill()
