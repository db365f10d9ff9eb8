"""`worker`: an RQ delivery worker for alerts, digests and campaigns against REDIS_URL."""

from __future__ import annotations

import logging
from typing import Any

import click

from bot.cli.common import on_shared_redis, pass_settings, reaches_line
from bot.settings import Settings


@click.command(help="run a delivery worker (RQ) against REDIS_URL")
@click.option("--burst", is_flag=True, help="exit when the queue is empty")
@pass_settings
@on_shared_redis
def worker(settings: Settings, burst: bool, *, handle: Any) -> int:
    # rq and the broadcast package (with the LINE SDK) load when the worker runs, not with every command
    from rq import SimpleWorker

    from bot.broadcast import jobs, queue

    if not reaches_line(settings, "the worker sends"):
        return 2
    logging.getLogger().setLevel(settings.log_level)
    requeued = jobs.requeue_stalled(handle.client, handle.url)
    if requeued:
        click.echo(f"re-queued {len(requeued)} alert(s)/campaign(s) whose worker stopped: {', '.join(requeued)}")
    # SimpleWorker runs jobs in this process: a kill stops the job with it, and the
    # chunk records let the next worker finish it.
    # with_scheduler: quiet-hours alerts, digests and campaign statistics are jobs scheduled for later
    SimpleWorker([queue.QUEUE], connection=queue.rq_connection(handle.url)).work(burst=burst, with_scheduler=True)
    return 0
