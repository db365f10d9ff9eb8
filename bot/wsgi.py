"""WSGI entry point for a process manager: `gunicorn "bot.wsgi:app"`.

A bad setting stops the process with one line naming the variable (as `python -m bot
serve` does), not a traceback in gunicorn's log.
"""

import sys

from pydantic import ValidationError

from bot.settings import Settings, describe_error
from bot.web.app import create_app
from bot.web.security import StartupError

try:
    settings = Settings.from_env()
except ValidationError as exc:
    sys.exit(describe_error(exc))

try:
    app = create_app(settings)
except StartupError as exc:
    sys.exit(str(exc))
