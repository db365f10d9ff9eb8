"""The rich menu: built from content/<city>/richmenu.yaml, deployed through the LINE API.

Rich-menu creation is limited to 100 requests an hour, so menus are created at
deploy time (`python -m bot richmenu deploy`), never per user.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from linebot.v3.messaging import (
    PostbackAction,
    RichMenuArea,
    RichMenuBounds,
    RichMenuRequest,
    RichMenuSize,
    URIAction,
)

from bot.content.loader import City
from bot.content.schema import RichMenu
from bot.line.api import LineApi

WIDTH, ROW_HEIGHT = 2500, 843


def size_of(menu: RichMenu) -> tuple[int, int]:
    return WIDTH, ROW_HEIGHT * menu.rows  # LINE takes 2500x843 or 2500x1686


def request_for(menu: RichMenu, lang: str = "ja") -> RichMenuRequest:
    width, height = size_of(menu)
    cell_w, cell_h = width // menu.columns, height // menu.rows
    areas = []
    for n, button in enumerate(menu.buttons):
        row, col = divmod(n, menu.columns)
        # the last column/row takes the remainder so the areas tile the image exactly
        w = width - cell_w * col if col == menu.columns - 1 else cell_w
        h = height - cell_h * row if row == menu.rows - 1 else cell_h
        label = button.label.get(lang)
        action = (PostbackAction(label=label, data=button.postback, display_text=label) if button.postback
                  else URIAction(label=label, uri=button.uri))
        areas.append(RichMenuArea(bounds=RichMenuBounds(x=cell_w * col, y=cell_h * row, width=w, height=h),
                                  action=action))
    return RichMenuRequest(size=RichMenuSize(width=width, height=height), selected=False, name=menu.name,
                           chat_bar_text=menu.chat_bar_text.get(lang), areas=areas)


def deploy(api: LineApi, city: City, timeout: float = 10.0) -> str:
    """Create the menu, upload its image and make it the default. Returns its id."""
    image = (city.folder / city.richmenu.image).read_bytes()
    created = api.api.create_rich_menu(request_for(city.richmenu), _request_timeout=timeout)
    menu_id = created.rich_menu_id
    api.blob.set_rich_menu_image(menu_id, image, _headers={"Content-Type": "image/png"},
                                _request_timeout=timeout)
    api.api.set_default_rich_menu(menu_id, _request_timeout=timeout)
    logging.getLogger(__name__).info("rich menu %s deployed for %s", menu_id, city.id)
    return menu_id


def image_html(menu: RichMenu, lang: str = "ja") -> str:
    """The menu drawn as a page (rendered to PNG by `richmenu image` in headless Chromium)."""
    width, height = size_of(menu)
    cells = "".join(
        f'<div class="cell{" call" if b.uri else ""}">{html.escape(b.label.get(lang))}</div>' for b in menu.buttons)
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; }}
.grid {{ width: {width}px; height: {height}px; display: grid; gap: 8px; background: #d7dde5; padding: 8px;
  box-sizing: border-box; grid-template-columns: repeat({menu.columns}, 1fr); grid-template-rows: repeat({menu.rows}, 1fr);
  font-family: "Noto Sans CJK JP", "Noto Sans JP", sans-serif; }}
.cell {{ background: #ffffff; color: #243447; border-radius: 24px; display: flex; align-items: center;
  justify-content: center; font-size: 110px; font-weight: 700; }}
.cell.call {{ background: #c8102e; color: #fff; }}
</style></head><body><div class="grid">{cells}</div></body></html>"""


def render_image(menu: RichMenu, out: Path, chromium: str = "/usr/bin/chromium") -> None:
    from playwright.sync_api import sync_playwright

    width, height = size_of(menu)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_content(image_html(menu))
        page.screenshot(path=str(out))
        browser.close()
