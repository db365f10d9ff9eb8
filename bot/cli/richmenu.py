"""`richmenu deploy | image`: a city's rich menu."""

from __future__ import annotations

import click
import yaml

from bot.cli.common import city_option, pass_settings
from bot.content.loader import load_catalog
from bot.content.schema import RichMenuFile
from bot.content.yamldoc import ContentError
from bot.settings import Settings


@click.command("richmenu", help="the rich menu of a city\n\n"
                    "ACTION deploy: create it through the LINE API, upload the image, make it default; "
                    "image: redraw content/<city>/<image> from the YAML (headless Chromium)")
@click.argument("action", type=click.Choice(["deploy", "image"]))
@pass_settings
@city_option
def richmenu_command(settings: Settings, action: str) -> int:
    return cmd_richmenu(settings, action)


def cmd_richmenu(settings: Settings, action: str) -> int:
    # the LINE SDK and the drawing code load for this command only
    from bot.line import richmenu

    if action == "image":
        folder = settings.content_root / "content" / settings.city
        menu = RichMenuFile.model_validate(yaml.safe_load((folder / "richmenu.yaml").read_text("utf-8"))).richmenu
        richmenu.render_image(menu, folder / menu.image)
        click.echo(f"wrote {folder / menu.image}")
        return 0
    from bot.line.api import LineApi

    if settings.local_mode:
        click.echo("richmenu deploy needs LINE_CHANNEL_ACCESS_TOKEN and LINE_CHANNEL_SECRET "
                   "(or LINE_API_BASE_URL pointing at a fake LINE API and any token)", err=True)
        return 2
    try:
        city = load_catalog(settings.content_root).city(settings.city)
    except (ContentError, KeyError) as exc:
        click.echo(exc, err=True)
        return 1
    api = LineApi(settings)
    try:
        menu_id = richmenu.deploy(api, city)
    except Exception as exc:  # noqa: BLE001 - report any API failure plainly
        click.echo(f"rich menu deploy failed: {exc}", err=True)
        return 1
    finally:
        api.close()
    click.echo(f"rich menu {menu_id} created, image uploaded, set as default for {settings.city}")
    return 0
