"""`ragbot`: the command line. Expected failures print one line on stderr and exit 1.

Exit codes: 0 success, 1 operational failure (source unreachable, bad credentials, index or
model down), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bot.teams.app_package import AppPackageError, build_app_package
from workers import jobs
from workers.freshness import age_text
from workers.ingest.sources import SOURCES, settings_hints
from workers.rag.audience import Audience
from workers.rag.retrieval_modes import MODES
from workers.readers import ReaderError, for_email, org_wide
from workers.settings import NotConfigured, Settings

if TYPE_CHECKING:
    from workers.runtime import Runtime

SYNC_WAIT_SECONDS = 6 * 3600
WAIT_POLL_SECONDS = 1.0


class WorkerUnavailable(Exception):
    """No worker took or finished a job handed over through the queue."""


def expected_failures() -> tuple[type[Exception], ...]:
    """Failures that get one line on stderr instead of a traceback. Imported only when one
    happens: `ragbot serve` must not load the models and the index to learn their names."""
    from connectors.base import ConnectorError
    from workers.evaluate import EvalInputError
    from workers.ingest.state import StateUnavailable
    from workers.ingest.sync import SyncFailed
    from workers.rag.embed import EmbeddingError
    from workers.rag.index import IndexUnavailable
    from workers.rag.llm import LLMError

    return (
        WorkerUnavailable,
        SyncFailed,
        ConnectorError,
        IndexUnavailable,
        EmbeddingError,
        LLMError,
        StateUnavailable,
        NotConfigured,
        ReaderError,
        EvalInputError,
        AppPackageError,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragbot", description="Answers questions from your company's documents."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = commands.add_parser("sync", help="sync one source (or all configured) now")
    sync.add_argument("source", nargs="?", choices=SOURCES, help="default: all configured")
    sync.add_argument("--full", action="store_true", help="re-read and re-embed everything")

    ask = commands.add_parser("ask", help="answer a question with cited sources")
    ask.add_argument("question")
    ask.add_argument("--as", dest="reader", metavar="EMAIL", help="answer as this reader")
    ask.add_argument("--json", action="store_true", help="print one JSON object")

    status = commands.add_parser("status", help="documents, chunks and sync health per source")
    status.add_argument("--json", action="store_true")

    serve = commands.add_parser("serve", help="the HTTP front door (Slack, Teams, health, metrics)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)

    worker = commands.add_parser(
        "worker", help="a Celery worker (answers and syncs unless -Q; `-Q embed` embeds)"
    )
    worker.add_argument(
        "-Q",
        "--queues",
        default=None,
        help="default: all (answer,index, and embed with RAGBOT_EMBED_FANOUT)",
    )

    commands.add_parser("beat", help="the Celery beat scheduler (periodic syncs)")

    app = commands.add_parser("teams-app", help="the Teams app package (manifest + icons)")
    app.add_argument("--endpoint", required=True, help="public host of `ragbot serve`")
    app.add_argument("--company", default="Our company", help="publisher name shown in Teams")
    app.add_argument("--website", default="https://example.com", help="publisher https:// URL")
    app.add_argument("--out", type=Path, default=Path("ragbot-teams.zip"))

    ev = commands.add_parser("eval", help="retrieval quality on a question set")
    ev.add_argument("--corpus", type=Path, required=True)
    ev.add_argument("--queries", type=Path, required=True)
    ev.add_argument("--k", type=int, default=10)
    ev.add_argument(
        "--mode",
        choices=(*MODES, "all"),
        default="hybrid",
        help="retriever to measure (default: the shipped hybrid); all: each side and the hybrid",
    )
    ev.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.celery_args = extra  # `ragbot worker` passes other options on to Celery
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"ragbot: invalid setting {first['loc'][0]}: {first['msg']}", file=sys.stderr)
        return 2
    try:
        if args.command == "serve":  # the front door: none of the pipeline's parts load
            return _serve(settings, args)
        if args.command == "teams-app":
            return _teams_app(settings, args)
        from workers.runtime import Runtime

        with Runtime(settings) as runtime:
            handler = {
                "sync": _sync,
                "ask": _ask,
                "status": _status,
                "eval": _eval,
                "worker": _worker,
                "beat": _beat,
            }
            return handler[args.command](runtime, args)
    except KeyboardInterrupt:
        print("ragbot: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not isinstance(exc, expected_failures()):
            raise
        print(f"ragbot: {exc}", file=sys.stderr)
        return 1


def _teams_app(settings: Settings, args: argparse.Namespace) -> int:
    app_id = settings.microsoft_app_id
    if not app_id:
        raise NotConfigured("set MICROSOFT_APP_ID to the bot's Azure app id")
    args.out.write_bytes(build_app_package(app_id, args.endpoint, args.company, args.website))
    print(f"wrote {args.out}: upload it in Teams (Apps > Manage your apps > Upload an app)")
    return 0


def _sync(runtime: Runtime, args: argparse.Namespace) -> int:
    names = [args.source] if args.source else runtime.configured_sources()
    if not names:
        raise NotConfigured(f"no source is configured (set {settings_hints()})")
    from bot.sync_display import SyncDisplay  # only `ragbot sync` draws progress

    for name in names:
        with SyncDisplay(name) as show:
            if runtime.settings.redis_url:
                outcome = _through_queue(
                    runtime.settings,
                    jobs.SYNC_SOURCE,
                    name,
                    args.full,
                    wait_seconds=SYNC_WAIT_SECONDS,
                    while_waiting=partial(_show_progress, runtime, name, show),
                )
                if not outcome["ok"]:
                    from workers.ingest.sync import SyncFailed

                    raise SyncFailed(outcome["summary"])
                summary = outcome["summary"]
            else:
                connector = runtime.connector(name)
                summary = runtime.syncer().sync(connector, full=args.full, progress=show).summary()
        print(summary)
    return 0


def _show_progress(runtime: Runtime, source: str, show: Callable[[Any], None]) -> None:
    """The worker's progress, as it saves it with the source's state."""
    from workers.ingest.progress import SyncProgress

    try:
        running = SyncProgress.from_json(runtime.state.load(source).progress)
    except Exception:  # progress is a courtesy: the sync's result still comes
        return
    if running is not None and running.is_current():
        show(running)


def _ask(runtime: Runtime, args: argparse.Namespace) -> int:
    if not args.question.strip():
        print("ragbot: the question is empty", file=sys.stderr)
        return 2
    if runtime.settings.redis_url:
        if args.reader:
            for_email(args.reader)  # a malformed reader is a usage problem, caught before queueing
        answer = _through_queue(runtime.settings, jobs.ASK, args.question, args.reader)
    else:
        principals = (
            runtime.reader(args.reader)
            if args.reader
            else org_wide(runtime.settings.ragbot_org_domains)
        )
        audience = Audience.of(principals)
        answer = runtime.answer_service().answer(args.question, audience).to_json()
    print(json.dumps(answer, ensure_ascii=False) if args.json else _answer_text(answer))
    return 0


def _answer_text(answer: dict[str, Any]) -> str:
    lines = [str(answer["answer"])]
    if answer["sources"]:
        lines += ["", "Sources:"]
        now = datetime.now(UTC)
        for s in answer["sources"]:
            updated = datetime.fromisoformat(s["updated_at"].replace("Z", "+00:00"))
            age = age_text(updated, now)
            lines.append(f"  [{s['n']}] {s['title']} ({s['source']}, {age})")
            lines.append(f"      {s['url']}")
    return "\n".join(lines)


def _status(runtime: Runtime, args: argparse.Namespace) -> int:
    from workers.ingest.status import SourceStatus

    if runtime.settings.redis_url:
        rows = [SourceStatus(**row) for row in _through_queue(runtime.settings, jobs.STATUS)]
    else:
        rows = runtime.statuses()
    if args.json:
        print(json.dumps({"sources": [row.to_json() for row in rows]}, ensure_ascii=False))
        return 0
    if not rows:
        print("No sources configured or synced yet. Set FILES_PATH and run `ragbot sync`.")
    now = datetime.now(UTC)
    for row in rows:
        print("\n".join(row.lines(now)))
    return 0


def _through_queue(
    settings: Settings,
    task: str,
    *args: Any,
    wait_seconds: int = 120,
    while_waiting: Callable[[], None] | None = None,
) -> Any:
    """With REDIS_URL the workers own the index: hand them the job and wait for the result
    (calling `while_waiting` about once a second meanwhile)."""
    from celery.exceptions import TimeoutError as CeleryTimeout
    from kombu.exceptions import OperationalError

    from workers.celery_app import configure

    app = configure(settings)
    try:
        if not app.control.ping(timeout=2):
            raise WorkerUnavailable("no worker is running; start one with `ragbot worker`")
        result = app.send_task(task, args=list(args))
        deadline = time.monotonic() + wait_seconds
        while while_waiting is not None and not result.ready():
            if time.monotonic() > deadline:
                raise CeleryTimeout()
            while_waiting()
            time.sleep(WAIT_POLL_SECONDS)
        return result.get(timeout=max(deadline - time.monotonic(), 1))
    except CeleryTimeout as exc:
        raise WorkerUnavailable(f"no worker finished the job within {wait_seconds} s") from exc
    except (OperationalError, OSError) as exc:
        raise WorkerUnavailable(f"Redis is unreachable: {exc}") from exc


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from bot.server import serve

    serve(settings, args.host, args.port)
    return 0


def _worker(runtime: Runtime, args: argparse.Namespace) -> int:
    if not runtime.settings.redis_url:
        raise NotConfigured(
            "a worker needs REDIS_URL (without it, tasks run inside `ragbot serve`)"
        )
    from workers.celery_app import configure

    app = configure(runtime.settings)
    celery_args = list(args.celery_args)
    every = [jobs.ANSWER_QUEUE, jobs.INDEX_QUEUE]
    if runtime.settings.ragbot_embed_fanout:
        every.append(jobs.EMBED_QUEUE)
    queues: str = args.queues or ",".join(every)

    def given(*flags: str) -> bool:
        return any(a in flags or a.startswith(tuple(f"{f}=" for f in flags)) for a in celery_args)

    # One process answers many questions at once on threads that share one index handle and
    # one embedding model (the embedded index opens in one process only, and answers mostly
    # wait on the chat model). A process pool is still there for who asks for it.
    if not given("-P", "--pool"):
        celery_args += ["--pool", "threads"]
    if not given("-c", "--concurrency"):
        # An embedding worker embeds one batch at a time, on all its cores: batches then
        # spread over every embedding worker instead of piling up on the first.
        embeds_only = set(queues.split(",")) == {jobs.EMBED_QUEUE}
        threads = 1 if embeds_only else runtime.settings.ragbot_worker_threads
        celery_args += ["--concurrency", str(threads)]
    app.worker_main(["worker", "--loglevel=INFO", "-Q", queues, *celery_args])
    return 0


def _beat(runtime: Runtime, args: argparse.Namespace) -> int:
    if not runtime.settings.redis_url:
        raise NotConfigured("beat needs REDIS_URL")
    from workers.celery_app import configure

    app = configure(runtime.settings)
    schedule = runtime.settings.ragbot_data_dir / "celerybeat-schedule"
    runtime.settings.ragbot_data_dir.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "--loglevel=INFO", "--schedule", str(schedule)])
    return 0


def _eval(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.k < 1:
        print("ragbot: --k must be at least 1", file=sys.stderr)
        return 2
    from workers.evaluate import evaluate

    modes = MODES if args.mode == "all" else (args.mode,)
    result = evaluate(args.corpus, args.queries, args.k, runtime.embedder, runtime.chunker, modes)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(
            f"{result['n']} questions, {result['documents']} documents, {result['chunks']} chunks"
        )
        for mode in [m for m in ("hybrid", "dense", "sparse") if m in result]:
            m = result[mode]
            figures = "  ".join(f"{key} {m[key]:.3f}" for key in ("hit@5", "hit@10", "mrr@10"))
            print(f"  {mode:<7} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
