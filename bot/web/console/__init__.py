"""The staff console (/admin): the blueprint and its pages, one module per part."""

from bot.web.console import admin, broadcasts, overview, sign_in  # noqa: F401  (they add their routes to bp)
from bot.web.console.base import bp

__all__ = ["bp"]
