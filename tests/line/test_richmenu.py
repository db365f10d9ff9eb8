"""The rich menu from content, deployed through line-bot-sdk against the fake LINE API."""

from __future__ import annotations

import pytest

from bot.cli import main
from bot.core import policy
from bot.core.postback import parse_postback
from bot.line import richmenu
from bot.line.api import LineApi
from bot.settings import Settings
from tests.line_helpers import TOKEN


@pytest.mark.parametrize("city", ["kumamoto", "minato"])
def test_menu_areas_tile_the_image_and_stay_neutral(catalog, city):
    menu = catalog.city(city).richmenu
    request = richmenu.request_for(menu).to_dict()
    width, height = request["size"]["width"], request["size"]["height"]
    assert (width, height) in ((2500, 843), (2500, 1686))
    assert sum(a["bounds"]["width"] * a["bounds"]["height"] for a in request["areas"]) == width * height
    assert len(request["chatBarText"]) <= 14 and len(request["areas"]) <= 20
    for area in request["areas"]:
        action = area["action"]
        assert policy.forbidden_label_word(action["label"]) is None
        if action["type"] == "postback":
            assert parse_postback(action["data"]) is not None


def test_deploy_creates_uploads_and_sets_default(catalog, line):
    api = LineApi(Settings(line_channel_access_token=TOKEN, line_api_base_url=line.url))
    try:
        menu_id = richmenu.deploy(api, catalog.city("kumamoto"))
    finally:
        api.close()
    assert line.fake.default_rich_menu == menu_id
    assert line.fake.rich_menu_images[menu_id][:8] == b"\x89PNG\r\n\x1a\n"
    assert line.fake.rich_menus[menu_id]["chatBarText"] == "メニュー"


def test_deploy_command_reports_success_and_refuses_local_mode(line, monkeypatch, capsys):
    local = Settings()
    assert main(["richmenu", "deploy"], settings=local) == 2
    configured = Settings(line_channel_secret="s", line_channel_access_token=TOKEN, line_api_base_url=line.url)
    assert main(["richmenu", "deploy", "--city", "minato"], settings=configured) == 0
    assert "set as default for minato" in capsys.readouterr().out
    assert line.fake.default_rich_menu is not None
