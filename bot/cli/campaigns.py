"""`campaign create | send | insights | stats`: awareness campaigns with surveys.

The broadcast package (and the LINE SDK it brings) is imported inside the commands: it
loads when a campaign command runs, not with every command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bot.cli.common import city_option, on_shared_redis, pass_settings, print_json, reaches_line
from bot.content.loader import load_catalog
from bot.settings import Settings


@click.group(help="awareness campaigns with surveys")
def campaign() -> None:
    pass


def _exists(handle: Any, campaign_id: str) -> bool:
    from bot.broadcast import campaigns

    if campaigns.load(handle.client, campaign_id) is None:
        click.echo(f"no campaign {campaign_id}", err=True)
        return False
    return True


@campaign.command("create", help="create a campaign from a JSON file (see README)")
@click.argument("file", type=click.Path(path_type=Path))
@pass_settings
@city_option
@on_shared_redis
def campaign_create(settings: Settings, file: Path, *, handle: Any) -> int:
    from bot.broadcast import campaigns

    city = load_catalog(settings.content_root).city(settings.city)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        campaign_id = campaigns.create_campaign(handle.client, city.id, [a.id for a in city.config.areas], data)
    except (OSError, ValueError) as exc:
        click.echo(f"campaign not created: {exc}", err=True)
        return 1
    click.echo(f"created campaign {campaign_id}")
    return 0


@campaign.command("send", help="queue the campaign for delivery")
@click.argument("campaign_id", metavar="ID")
@pass_settings
@on_shared_redis
def campaign_send(settings: Settings, campaign_id: str, *, handle: Any) -> int:
    from bot.broadcast import actions, campaigns

    city = load_catalog(settings.content_root).city(settings.city)
    try:
        held = actions.send_campaign(handle.client, handle.url, city, campaign_id)
    except LookupError:
        click.echo(f"no campaign {campaign_id}", err=True)
        return 1
    except campaigns.CampaignError as exc:
        click.echo(f"campaign not sent: {exc}", err=True)
        return 1
    click.echo(f"queued campaign {campaign_id}" + (f" for {held} (quiet hours)" if held else ""))
    return 0


@campaign.command("insights", help="fetch LINE's open/click statistics now")
@click.argument("campaign_id", metavar="ID")
@pass_settings
@on_shared_redis
def campaign_insights(settings: Settings, campaign_id: str, *, handle: Any) -> int:
    from linebot.v3.insight import ApiException, Insight
    from urllib3.exceptions import HTTPError

    from bot.broadcast import campaigns
    from bot.core.keys import campaign_key
    from bot.line.api import insight_client

    if not _exists(handle, campaign_id):
        return 1
    if handle.client.hget(campaign_key(campaign_id), "state") in ("draft", "queued"):
        click.echo(f"campaign {campaign_id} has not gone out yet: LINE has no statistics for it", err=True)
        return 1
    if not reaches_line(settings, "the statistics come"):
        return 2
    api = insight_client(settings)
    try:
        snapshot = campaigns.fetch_insights(handle.client, Insight(api), campaign_id)
    except (ApiException, HTTPError, OSError) as exc:
        click.echo(f"could not fetch LINE's statistics: {type(exc).__name__} ({getattr(exc, 'status', '')})",
                   err=True)
        return 1
    finally:
        api.close()
    print_json(snapshot)
    return 0


@campaign.command("stats", help="delivered, opens, clicks, answers per variant")
@click.argument("campaign_id", metavar="ID")
@click.option("--csv", "as_csv", is_flag=True)
@pass_settings
@on_shared_redis
def campaign_stats(settings: Settings, campaign_id: str, as_csv: bool, *, handle: Any) -> int:
    from bot.broadcast import campaigns

    report = campaigns.campaign_stats(handle.client, campaign_id)
    if report is None:
        click.echo(f"no campaign {campaign_id}", err=True)
        return 1
    if as_csv:
        spec = campaigns.load(handle.client, campaign_id)
        click.echo(campaigns.stats_csv(report, spec.survey.questions if spec else None))
    else:
        print_json(report)
    return 0
