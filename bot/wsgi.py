"""WSGI entry point for a process manager: `gunicorn "bot.wsgi:app"`."""

from bot.web.app import create_app

app = create_app()
