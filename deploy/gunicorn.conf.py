# Gunicorn settings for `python -m bot serve` (also usable as
# `gunicorn -c deploy/gunicorn.conf.py "bot.wsgi:app"`). Values come from the
# environment so a deployment changes them without editing code.
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Threads, not many processes: request work is short and mostly waits on Redis
# and LINE. Local mode needs one process (the fake LINE API lives in memory).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# LINE gives up on a webhook after 2 s; anything near this timeout is a bug.
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = "-"
# Never log query strings or bodies: only method, path and status.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
loglevel = os.environ.get("BOT_LOG_LEVEL", "info").lower()
# Build the app (content, the matcher's model: several seconds of CPU) once in the
# master, then fork: workers start ready and share the model's pages. Nothing opens
# a connection or a thread before the fork (Redis, LINE and the outbox pool are lazy).
preload_app = True
