"""Command line: `python -m bot chat | check | evaluate`.

The commands call the same domain functions as every other surface (runtime,
dialogue, loader, evaluate); nothing here re-implements them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from bot.content.loader import load
from bot.content.yamldoc import ContentError
from bot.settings import Settings, describe_error

if TYPE_CHECKING:  # the matcher (scikit-learn) stays out of workers and other commands
    from bot.conversation.dialogue import Turn

DEFAULT_EVAL_FILE = Path("tests/data/labelled.yaml")
DEFAULT_CRISIS_FILE = Path("tests/data/crisis_heldout.yaml")
DEV_CRISIS_FILE = Path("tests/data/crisis_dev2.yaml")


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Kumamoto/Minato safety chatbot")
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="chat with the bot in the terminal")
    chat.add_argument("--json", action="store_true", help="one JSON object per input line (machine contract)")
    chat.add_argument("--city", help="city profile (default: BOT_CITY or kumamoto)")
    chat.add_argument("--user", default="Ucli00000000000000000000000000000", help="LINE-style user id")

    check = sub.add_parser("check", help="validate intents/ and content/")
    check.add_argument("--root", type=Path, help="folder holding intents/ and content/")
    check.add_argument("--quiet-warnings", action="store_true", help="print errors only")

    ev = sub.add_parser("evaluate", help="measure understanding on a labelled YAML file")
    ev.add_argument("file", nargs="?", type=Path, help=f"labelled file (default {DEFAULT_EVAL_FILE})")
    ev.add_argument("--json", action="store_true", help="machine-readable report")
    ev.add_argument("--crisis-file", type=Path, help=f"held-out crisis set (default {DEFAULT_CRISIS_FILE})")
    ev.add_argument("--no-cv", action="store_true", help="skip the crisis cross-validation (five fits, about 30 s)")

    serve = sub.add_parser("serve", help="run the webhook (local mode without LINE credentials)")
    serve.add_argument("--host", help="listen address (default HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default PORT or 8000)")
    serve.add_argument("--dev", action="store_true", help="werkzeug's development server instead of gunicorn")

    fake = sub.add_parser("fake-line", help="run the fake LINE Messaging API (tests, benchmarks, local work)")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9090)
    fake.add_argument("--access-token", help="require this bearer token")

    rich = sub.add_parser("richmenu", help="the rich menu of a city")
    rich.add_argument("action", choices=["deploy", "image"],
                      help="deploy: create it through the LINE API, upload the image, make it default; "
                           "image: redraw content/<city>/<image> from the YAML (headless Chromium)")
    rich.add_argument("--city", help="city profile (default: BOT_CITY or kumamoto)")

    worker = sub.add_parser("worker", help="run a delivery worker (RQ) against REDIS_URL")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")

    alert = sub.add_parser("alert", help="send a scam/safety alert, or see how it is doing")
    alert_sub = alert.add_subparsers(dest="alert_command", required=True)
    send = alert_sub.add_parser("send", help="queue an alert for delivery")
    send.add_argument("--city", help="city profile (default: BOT_CITY or kumamoto)")
    send.add_argument("--topic", required=True, help="fraud | suspicious | missing | emergency | safety")
    send.add_argument("--areas", required=True, help="comma-separated area ids, or all")
    send.add_argument("--title", required=True, help="headline (also the lock-screen preview)")
    send.add_argument("--body", required=True, help="手口: who they pretend to be, what they say")
    send.add_argument("--where-when", help="いつ・どこで")
    send.add_argument("--countermeasure", action="append", default=[], help="up to 3, repeat the option")
    send.add_argument("--desk", help="desk id for the call button (default: the city's desk for the topic)")
    send.add_argument("--en-title", help="English version (for residents who use the bot in English): title")
    send.add_argument("--en-body", help="English version: how it works (with --en-title)")
    send.add_argument("--en-where-when", help="English version: when and where")
    send.add_argument("--en-countermeasure", action="append", default=[], help="English version: up to 3")
    send.add_argument("--now", action="store_true",
                      help="send at once even in the city's quiet hours (non-urgent topics otherwise wait)")
    status = alert_sub.add_parser("status", help="recipients, sent, failed, chunks, ETA")
    status.add_argument("id")
    day = alert_sub.add_parser("digest", help="one day's digest: its alerts, residents and deliveries")
    day.add_argument("--day", help="YYYY-MM-DD (JST; default: today)")
    day.add_argument("--city", help="city profile (default: BOT_CITY or kumamoto)")

    camp = sub.add_parser("campaign", help="awareness campaigns with surveys")
    camp_sub = camp.add_subparsers(dest="campaign_command", required=True)
    create = camp_sub.add_parser("create", help="create a campaign from a JSON file (see README)")
    create.add_argument("file", type=Path)
    create.add_argument("--city", help="city profile (default: BOT_CITY or kumamoto)")
    camp_send = camp_sub.add_parser("send", help="queue the campaign for delivery")
    camp_send.add_argument("id")
    camp_insights = camp_sub.add_parser("insights", help="fetch LINE's open/click statistics now")
    camp_insights.add_argument("id")
    camp_stats = camp_sub.add_parser("stats", help="delivered, opens, clicks, answers per variant")
    camp_stats.add_argument("id")
    camp_stats.add_argument("--csv", action="store_true")

    args = parser.parse_args(argv)
    try:
        settings = settings or Settings.from_env()
    except ValidationError as exc:  # a bad variable: one line naming it, no traceback
        print(describe_error(exc), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "check":
        return cmd_check(args.root or settings.content_root, args.quiet_warnings)
    if args.command == "evaluate":
        return cmd_evaluate(settings, args.file, args.json, args.crisis_file, not args.no_cv)
    if args.command == "worker":
        return cmd_worker(settings, args.burst)
    if args.command == "campaign":
        return cmd_campaign(settings.with_(city=getattr(args, "city", None) or settings.city), args)
    if args.command == "alert":
        return cmd_alert(settings.with_(city=getattr(args, "city", None) or settings.city), args)
    if args.command == "richmenu":
        return cmd_richmenu(settings.with_(city=args.city or settings.city), args.action)
    if args.command == "fake-line":
        return cmd_fake_line(args.host, args.port, args.access_token)
    if args.command == "serve":
        return cmd_serve(settings.with_(host=args.host or settings.host, port=args.port or settings.port), args.dev)
    if args.city:
        settings = settings.with_(city=args.city)
    return cmd_chat(settings, args.user, args.json)


# ---------------------------------------------------------------- check


def cmd_check(root: Path, quiet_warnings: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    catalog, problems = load(root)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for problem in errors + ([] if quiet_warnings else warnings):
        print(problem, file=out)
    if errors:
        print(f"\n{len(errors)} error(s), {len(warnings)} warning(s): content is NOT valid; the bot will not start.",
              file=out)
        return 1
    assert catalog is not None
    examples = sum(len(i.examples) for i in catalog.intents)
    desks = {d for c in catalog.cities.values() for d in c.desks}
    print(f"OK: {len(catalog.intents)} intents, {examples} examples, {len(catalog.cities)} cities "
          f"({', '.join(sorted(catalog.cities))}), {len(desks)} desks; {len(warnings)} warning(s).", file=out)
    return 0


# ---------------------------------------------------------------- evaluate


def cmd_evaluate(settings: Settings, path: Path | None, as_json: bool, crisis_path: Path | None = None,
                 cv: bool = True) -> int:
    from bot.content.loader import load_catalog
    from bot.understanding.crisis_eval import (
        crisis_report,
        cross_validate,
        format_crisis,
        load_crisis_items,
    )
    from bot.understanding.evaluate import evaluate, format_report, load_items
    from bot.understanding.matcher import Matcher

    try:
        catalog = load_catalog(settings.content_root)
    except ContentError as exc:
        print(exc, file=sys.stderr)
        return 1
    path = path or settings.content_root / DEFAULT_EVAL_FILE
    try:
        items = load_items(path, set(catalog.by_id))
    except (OSError, ValueError) as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    crisis_path = crisis_path or settings.content_root / DEFAULT_CRISIS_FILE
    try:
        crisis_items = load_crisis_items(crisis_path) if crisis_path.is_file() else []
        dev_path = settings.content_root / DEV_CRISIS_FILE
        dev_items = load_crisis_items(dev_path) if crisis_items and dev_path.is_file() else []
    except (OSError, ValueError) as exc:
        print(f"cannot read {crisis_path}: {exc}", file=sys.stderr)
        return 1
    matcher = Matcher(catalog, settings.model_cache_dir)
    report = evaluate(matcher, items)
    city = catalog.city(settings.city)
    report["crisis"] = crisis_report(matcher, city, crisis_items, dev_items) if crisis_items else None
    report["crisis_cv"] = cross_validate(catalog) if cv else None
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
        if report["crisis"]:
            print(format_crisis(report["crisis"], report["crisis_cv"]))
    return 0


# ---------------------------------------------------------------- alerts


def on_shared_redis(command: Callable[..., int]) -> Callable[..., int]:
    """For commands that work on the Redis `serve` and the workers share: they get its
    handle (closed afterwards); without REDIS_URL they exit 2 with a message."""

    @functools.wraps(command)
    def run(settings: Settings, *args: Any) -> int:
        from bot.core.redis_conn import connect

        if settings.redis_url is None:
            print("alerts and campaigns need a shared Redis: set REDIS_URL (the same one `serve` and the "
                  "workers use)", file=sys.stderr)
            return 2
        handle = connect(settings.redis_url, settings.data_dir)
        try:
            return command(settings, *args, handle=handle)
        finally:
            handle.close()

    return run


@on_shared_redis
def cmd_worker(settings: Settings, burst: bool, *, handle: Any) -> int:
    from rq import SimpleWorker

    from bot.broadcast import jobs, queue

    if not settings.line_channel_access_token and settings.line_api_base_url == Settings().line_api_base_url:
        print("the worker sends through LINE: set LINE_CHANNEL_ACCESS_TOKEN, or LINE_API_BASE_URL to a fake "
              "LINE API (`python -m bot serve` in local mode prints the command to use)", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(settings.log_level)
    requeued = jobs.requeue_stalled(handle.client, handle.url)
    if requeued:
        print(f"re-queued {len(requeued)} alert(s)/campaign(s) whose worker stopped: {', '.join(requeued)}", flush=True)
    # SimpleWorker runs jobs in this process: a kill stops the job with it, and the
    # chunk records let the next worker finish it.
    # with_scheduler: quiet-hours alerts, digests and campaign statistics are jobs scheduled for later
    SimpleWorker([queue.QUEUE], connection=queue.rq_connection(handle.url)).work(burst=burst,
                                                                                      with_scheduler=True)
    return 0


@on_shared_redis
def cmd_alert(settings: Settings, args: argparse.Namespace, *, handle: Any) -> int:
    from bot.broadcast import actions, alerts, status
    from bot.content.loader import load_catalog

    url = handle.url
    if args.alert_command == "digest":
        from bot.core.clock import JST

        day = args.day or dt.datetime.now(JST).date().isoformat()
        report = status.digest_status(handle.client, settings.city, day, settings.alert_rate_per_second)
        if report is None:
            print(f"no digest for {settings.city} on {day}", file=sys.stderr)
            return 1
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    if args.alert_command == "status":
        found = status.alert_status(handle.client, args.id, settings.alert_rate_per_second)
        if found is None:
            print(f"no alert {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(found.as_dict(), ensure_ascii=False, indent=2))
        return 0
    city = load_catalog(settings.content_root).city(settings.city)
    data = {"topic": args.topic, "areas": [a for a in args.areas.split(",") if a], "title": args.title,
            "body": args.body, "where_when": args.where_when, "countermeasures": args.countermeasure,
            "desk": args.desk, "send_now": args.now}
    if args.en_title or args.en_body:
        data["en"] = {"title": args.en_title, "body": args.en_body, "where_when": args.en_where_when,
                      "countermeasures": args.en_countermeasure}
    try:
        sent = actions.send_alert(handle.client, url, city, data, settings.alert_rate_per_second)
    except alerts.AlertError as exc:
        print(f"alert not sent: {exc}", file=sys.stderr)
        return 1
    when = f" for {sent.scheduled_for} (quiet hours; --now sends at once)" if sent.scheduled_for else ""
    print(f"queued alert {sent.id}{when}; see `python -m bot alert status {sent.id}`")
    return 0


@on_shared_redis
def cmd_campaign(settings: Settings, args: argparse.Namespace, *, handle: Any) -> int:
    from bot.broadcast import campaigns
    from bot.content.loader import load_catalog

    url = handle.url
    if args.campaign_command == "create":
        city = load_catalog(settings.content_root).city(settings.city)
        try:
            data = json.loads(args.file.read_text(encoding="utf-8"))
            campaign_id = campaigns.create_campaign(handle.client, city.id, [a.id for a in city.config.areas],
                                                    data)
        except (OSError, ValueError) as exc:
            print(f"campaign not created: {exc}", file=sys.stderr)
            return 1
        print(f"created campaign {campaign_id}")
        return 0
    if campaigns.load(handle.client, args.id) is None:
        print(f"no campaign {args.id}", file=sys.stderr)
        return 1
    if args.campaign_command == "send":
        from bot.broadcast import actions

        city = load_catalog(settings.content_root).city(settings.city)
        try:
            held = actions.send_campaign(handle.client, url, city, args.id)
        except campaigns.CampaignError as exc:
            print(f"campaign not sent: {exc}", file=sys.stderr)
            return 1
        print(f"queued campaign {args.id}" + (f" for {held} (quiet hours)" if held else ""))
        return 0
    if args.campaign_command == "insights":
        from linebot.v3.insight import ApiClient as InsightClient
        from linebot.v3.insight import Configuration as InsightConfiguration
        from linebot.v3.insight import Insight

        api = InsightClient(InsightConfiguration(host=settings.line_api_base_url,
                                                 access_token=settings.line_channel_access_token.get_secret_value()
                                                 if settings.line_channel_access_token else "local"))
        try:
            snapshot = campaigns.fetch_insights(handle.client, Insight(api), args.id)
        finally:
            api.close()
        print(json.dumps(snapshot, ensure_ascii=False, indent=2))
        return 0
    report = campaigns.campaign_stats(handle.client, args.id)
    print(campaigns.stats_csv(report) if args.csv else json.dumps(report, ensure_ascii=False, indent=2))
    return 0


# ---------------------------------------------------------------- rich menu


def cmd_richmenu(settings: Settings, action: str) -> int:
    import yaml

    from bot.content.schema import RichMenuFile
    from bot.line import richmenu

    if action == "image":
        folder = settings.content_root / "content" / settings.city
        menu = RichMenuFile.model_validate(yaml.safe_load((folder / "richmenu.yaml").read_text("utf-8"))).richmenu
        richmenu.render_image(menu, folder / menu.image)
        print(f"wrote {folder / menu.image}")
        return 0
    from bot.content.loader import load_catalog
    from bot.line.api import LineApi

    if settings.local_mode:
        print("richmenu deploy needs LINE_CHANNEL_ACCESS_TOKEN and LINE_CHANNEL_SECRET "
              "(or LINE_API_BASE_URL pointing at a fake LINE API and any token)", file=sys.stderr)
        return 2
    try:
        city = load_catalog(settings.content_root).city(settings.city)
    except (ContentError, KeyError) as exc:
        print(exc, file=sys.stderr)
        return 1
    api = LineApi(settings)
    try:
        menu_id = richmenu.deploy(api, city)
    except Exception as exc:  # noqa: BLE001 - report any API failure plainly
        print(f"rich menu deploy failed: {exc}", file=sys.stderr)
        return 1
    finally:
        api.close()
    print(f"rich menu {menu_id} created, image uploaded, set as default for {settings.city}")
    return 0


# ---------------------------------------------------------------- serve


def cmd_serve(settings: Settings, dev: bool = False) -> int:
    import os

    from bot.content.loader import load_catalog
    from bot.core.redis_conn import start_embedded
    from bot.runtime import build
    from bot.web.app import FAKE_LINE_PREFIX, create_app

    logging.getLogger().setLevel(settings.log_level)
    try:
        catalog = load_catalog(settings.content_root)  # refuse to start on invalid content, before forking
    except ContentError as exc:
        print(exc, file=sys.stderr)
        return 1
    embedded = None
    if settings.redis_url is None:
        # One embedded Redis for all worker processes, started before they fork; or the
        # one another command already runs on this data folder, which is not ours to stop.
        embedded, url = start_embedded(settings.data_dir)
        settings = settings.with_(redis_url=url)
        if embedded is None:
            print(f"Joined the embedded Redis another process started in {settings.data_dir}: it stops "
                  "when that process exits.", flush=True)
    where = f"http://{settings.host}:{settings.port}"
    if settings.local_mode:
        print(f"Local mode (no LINE credentials): open {where}/dev/chat to talk to the bot.", flush=True)
    print(f"Webhook: POST {where}/callback   Health: {where}/healthz", flush=True)
    if settings.local_mode:
        # Alerts and campaigns reach the talk screen too: a worker delivers into this
        # process's fake LINE API.
        print(f"Redis: {settings.redis_url}  (alert workers: REDIS_URL={settings.redis_url} "
              f"LINE_API_BASE_URL={where}{FAKE_LINE_PREFIX} python -m bot worker)", flush=True)
    else:
        print(f"Redis: {settings.redis_url}  (alert workers: REDIS_URL={settings.redis_url} python -m bot worker)",
              flush=True)
    try:
        if dev:
            app = create_app(settings, runtime=build(settings, catalog=catalog))
            app.run(settings.host, settings.port, threaded=True)
            return 0
        from gunicorn.app.base import BaseApplication

        class Server(BaseApplication):  # gunicorn's documented custom-application hook
            def load_config(self) -> None:
                path = settings.content_root / "deploy" / "gunicorn.conf.py"
                namespace: dict[str, Any] = {}
                os.environ.setdefault("HOST", settings.host)
                os.environ.setdefault("PORT", str(settings.port))
                exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102
                for key, value in namespace.items():
                    if key in self.cfg.settings and value is not None:
                        self.cfg.set(key, value)
                self.cfg.set("bind", f"{settings.host}:{settings.port}")
                if settings.local_mode:
                    self.cfg.set("workers", 1)  # the fake LINE API lives in this one process

            def load(self):  # noqa: ANN202
                # preload_app (deploy/gunicorn.conf.py): built once, in the master
                return create_app(settings, runtime=build(settings, catalog=catalog))

        Server().run()
        return 0
    finally:
        if embedded is not None:
            embedded.shutdown()


def cmd_fake_line(host: str, port: int, access_token: str) -> int:
    from gunicorn.app.base import BaseApplication

    from bot.line.fake import FakeLine, create_fake_line_app

    app = create_fake_line_app(FakeLine(access_token=access_token))

    class Server(BaseApplication):  # gunicorn's documented custom-application hook
        def load_config(self) -> None:
            # One process (the fake's state lives in it), threads for concurrent senders,
            # keep-alive like LINE's servers; werkzeug's development server cost twice
            # the CPU per request, which the benchmarks share with the code they measure.
            for key, value in {"bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread",
                               "threads": 64, "keepalive": 30, "loglevel": "warning"}.items():
                self.cfg.set(key, value)

        def load(self):  # noqa: ANN202
            return app

    print(f"Fake LINE API on http://{host}:{port} (set LINE_API_BASE_URL to this)", flush=True)
    Server().run()
    return 0


# ---------------------------------------------------------------- chat


def cmd_chat(settings: Settings, user: str, as_json: bool,
             stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    from bot.conversation.dialogue import TextInput
    from bot.runtime import build

    stdin, out = stdin or sys.stdin, out or sys.stdout
    try:
        runtime = build(settings)
    except ContentError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    try:
        dialogue = runtime.dialogue()
        if as_json:
            for line in stdin:
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                turn = dialogue.respond(user, TextInput(text))
                out.write(json.dumps(turn_json(text, turn), ensure_ascii=False) + "\n")
                out.flush()
            return 0
        return _interactive(dialogue, user, stdin, out, settings.city)
    finally:
        runtime.close()


def turn_json(text: str, turn: Turn) -> dict[str, Any]:
    """The stable `chat --json` contract (README): one object per input line."""
    return {
        "text": text,
        "intent": turn.intent if turn.decision == "answer" else None,
        "score": turn.score,
        "candidates": [{"intent": c.intent, "score": c.score} for c in turn.candidates],
        "messages": turn.wire_messages(),
        "decision": turn.decision,
    }


def _interactive(dialogue: Any, user: str, stdin: TextIO, out: TextIO, city: str) -> int:
    from bot.conversation.dialogue import Input, PostbackInput, TextInput

    print(f"[{city}] 話しかけてください（番号でボタンを押せます / Ctrl-D か /quit で終了）", file=out)
    actions: list[dict[str, Any]] = []
    while True:
        out.write("\nあなた> ")
        out.flush()
        line = stdin.readline()
        if not line or line.strip() in ("/quit", "/exit"):
            print("", file=out)
            return 0
        text = line.strip()
        if not text:
            continue
        inp: Input = TextInput(text)
        if text.isdigit() and 1 <= int(text) <= len(actions):
            action = actions[int(text) - 1]
            if action.get("displayText"):
                print(f"（{action['displayText']}）", file=out)
            inp = PostbackInput(action["data"])
        started = time.perf_counter()
        turn = dialogue.respond(user, inp)
        elapsed = (time.perf_counter() - started) * 1000
        rendered, actions = render(turn.messages)
        print(rendered, file=out)
        print(f"  ({turn.decision} {turn.intent or ''} {turn.score:.0f}, {elapsed:.0f} ms)", file=out)


def render(messages: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Messages as terminal text; returns the quick-reply actions, numbered from 1."""
    lines: list[str] = []
    actions: list[dict[str, Any]] = []
    for message in messages:
        wire = message.to_dict()
        if wire["type"] == "text":
            lines.append("ボット> " + wire["text"].replace("\n", "\n      "))
        elif wire["type"] == "flex":
            container = wire["contents"]
            for bubble in container["contents"] if container["type"] == "carousel" else [container]:
                lines.append(_render_bubble(bubble))
        for item in (wire.get("quickReply") or {}).get("items", []):
            actions.append(item["action"])
    if actions:
        lines.append("  " + "  ".join(f"[{n}] {a['label']}" for n, a in enumerate(actions, 1)))
    return "\n".join(lines), actions


def _render_bubble(bubble: dict[str, Any]) -> str:
    texts = [c["text"] for c in bubble["body"]["contents"] if c["type"] == "text"]
    buttons = [c["action"] for c in bubble.get("footer", {}).get("contents", []) if c["type"] == "button"]
    out = ["  ┌ " + texts[0]] + ["  │ " + t for t in texts[1:]]
    out += [f"  │ [{b['label']}] {b['uri']}" for b in buttons]
    out.append("  └")
    return "\n".join(out)
