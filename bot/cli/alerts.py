"""`alert send | status | digest`: the staff API's alert calls on the command line.

The broadcast package (and the LINE SDK it brings) is imported inside the commands: it
loads when an alert command runs, not with every command.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from bot.cli.common import city_option, on_shared_redis, pass_settings, print_json
from bot.content.loader import load_catalog
from bot.core.clock import JST
from bot.settings import Settings


@click.group(help="send a scam/safety alert, or see how it is doing")
def alert() -> None:
    pass


@alert.command("send", help="queue an alert for delivery")
@click.option("--topic", required=True, help="fraud | suspicious | missing | emergency | safety")
@click.option("--areas", required=True, help="comma-separated area ids, or all")
@click.option("--title", required=True, help="headline (also the lock-screen preview)")
@click.option("--body", required=True, help="手口: who they pretend to be, what they say")
@click.option("--where-when", help="いつ・どこで")
@click.option("--countermeasure", multiple=True, help="up to 3, repeat the option")
@click.option("--desk", help="desk id for the call button (default: the city's desk for the topic)")
@click.option("--en-title", help="English version (for residents who use the bot in English): title")
@click.option("--en-body", help="English version: how it works (with --en-title)")
@click.option("--en-where-when", help="English version: when and where")
@click.option("--en-countermeasure", multiple=True, help="English version: up to 3")
@click.option("--now", is_flag=True,
              help="send at once even in the city's quiet hours (non-urgent topics otherwise wait)")
@pass_settings
@city_option
@on_shared_redis
def alert_send(settings: Settings, topic: str, areas: str, title: str, body: str, where_when: str | None,
         countermeasure: tuple[str, ...], desk: str | None, en_title: str | None, en_body: str | None,
         en_where_when: str | None, en_countermeasure: tuple[str, ...], now: bool, *, handle: Any) -> int:
    from bot.broadcast import actions, alerts

    city = load_catalog(settings.content_root).city(settings.city)
    data: dict[str, Any] = {"topic": topic, "areas": [a for a in areas.split(",") if a], "title": title,
                            "body": body, "where_when": where_when, "countermeasures": list(countermeasure),
                            "desk": desk, "send_now": now}
    if en_title or en_body:
        data["en"] = {"title": en_title, "body": en_body, "where_when": en_where_when,
                      "countermeasures": list(en_countermeasure)}
    try:
        sent = actions.send_alert(handle.client, handle.url, city, data, settings.alert_rate_per_second)
    except alerts.AlertError as exc:
        click.echo(f"alert not sent: {exc}", err=True)
        return 1
    when = f" for {sent.scheduled_for} (quiet hours; --now sends at once)" if sent.scheduled_for else ""
    click.echo(f"queued alert {sent.id}{when}; see `python -m bot alert status {sent.id}`")
    return 0


@alert.command("status", help="recipients, sent, failed, chunks, ETA")
@click.argument("alert_id", metavar="ID")
@pass_settings
@on_shared_redis
def alert_status(settings: Settings, alert_id: str, *, handle: Any) -> int:
    from bot.broadcast import status

    found = status.alert_status(handle.client, alert_id, settings.alert_rate_per_second)
    if found is None:
        click.echo(f"no alert {alert_id}", err=True)
        return 1
    print_json(found.as_dict())
    return 0


@alert.command("digest", help="one day's digest: its alerts, residents and deliveries")
@click.option("--day", help="YYYY-MM-DD (JST; default: today)")
@pass_settings
@city_option
@on_shared_redis
def alert_digest(settings: Settings, day: str | None, *, handle: Any) -> int:
    from bot.broadcast import status

    day = day or dt.datetime.now(JST).date().isoformat()
    report = status.digest_status(handle.client, settings.city, day, settings.alert_rate_per_second)
    if report is None:
        click.echo(f"no digest for {settings.city} on {day}", err=True)
        return 1
    print_json(report)
    return 0
