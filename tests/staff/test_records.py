"""The records: accounts, the transition table, self-approval, cancelling, the audit log, and
records that survive a restart, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import subprocess
import uuid

import pytest
import sqlalchemy

from bot.broadcast import queue
from bot.broadcast.alert_delivery import AlertDelivery
from bot.core.clock import JST
from bot.staff import accounts, alert_workflow, audit, records, transitions
from bot.staff.db import Database, open_database
from bot.staff.errors import Conflict, Forbidden, StaffError
from bot.staff.models import AuditEntry
from bot.staff.records import Context
from bot.staff.roles import Actor
from tests.line_helpers import run_with_line, user

ALERT = {"topic": "fraud", "areas": ["chuo"], "title": "「市役所」を名乗る還付金の電話",
         "body": "市役所の職員を名乗り「医療費の還付がある」とATMへ誘導する電話。", "send_now": True}
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """A real PostgreSQL: the one answering on 127.0.0.1:5432, else Debian's cluster started here."""
    def answers() -> bool:
        try:
            with sqlalchemy.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://")).connect():
                return True
        except sqlalchemy.exc.OperationalError:
            return False

    if not answers():
        subprocess.run("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start", shell=True,
                       check=False, capture_output=True, timeout=60)
    assert answers(), "no PostgreSQL on 127.0.0.1:5432 and none could be started (apt install postgresql)"
    return PG_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_settings(request, settings):
    if request.param == "sqlite":
        yield settings
        return
    # a schema of its own per test: the records of one test never meet another's
    schema = "t" + uuid.uuid4().hex[:10]
    base = postgres_url()
    engine = sqlalchemy.create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    yield settings.with_(database_url=f"{base}?options=-csearch_path%3D{schema}")
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def ctx(database_settings, runtime, redis_client):
    database = open_database(database_settings)
    yield Context(database, redis_client, runtime.redis.url, runtime.catalog.city("kumamoto"),
                  database_settings.with_(redis_url=runtime.redis.url))
    database.close()


@pytest.fixture
def people(ctx):
    return {name: accounts.add_staff(ctx.db, None, name, role, f"long-password-{name}")
            for name, role in (("ed", "editor"), ("ap", "approver"), ("ap2", "approver"), ("ad", "admin"))}


def test_the_workflow_follows_the_table_and_nobody_approves_their_own(ctx, people):
    ed, ap, ap2 = people["ed"], people["ap"], people["ap2"]
    row = alert_workflow.draft(ctx, ed, ALERT)
    assert row.state == "awaiting_approval" and row.author.name == "ed"
    with pytest.raises(Forbidden):
        alert_workflow.approve(ctx, ed, row.id)  # an editor cannot approve
    mine = alert_workflow.draft(ctx, ap, ALERT)
    with pytest.raises(Forbidden, match="自分で作成"):
        alert_workflow.approve(ctx, ap, mine.id)
    with pytest.raises(Forbidden, match="緊急"):
        alert_workflow.send_alone(ctx, ap, mine.id)  # a fraud alert needs a second approver
    with pytest.raises(StaffError):
        alert_workflow.reject(ctx, ap2, row.id, "  ")  # a rejection says why
    rejected = alert_workflow.reject(ctx, ap2, row.id, "場所を具体的に")
    assert rejected.state == "rejected" and rejected.reject_reason == "場所を具体的に"
    with pytest.raises(Conflict):
        alert_workflow.approve(ctx, ap, row.id)  # rejected: back to the author first
    edited = alert_workflow.edit(ctx, ed, row.id, {**ALERT, "where_when": "中央区で12月に"})
    assert edited.state == "draft"
    assert alert_workflow.submit(ctx, ed, row.id).state == "awaiting_approval"
    sent = alert_workflow.approve(ctx, ap, row.id)
    assert (sent.state, sent.approver.name, sent.sole_approval) == ("queued", "ap", False)
    with pytest.raises(Conflict):
        alert_workflow.approve(ctx, ap2, row.id)
    trail = [(e.actor, e.action) for e in reversed(audit.entries(ctx.db, subject_id=row.id))]
    assert trail == [("ed", "draft"), ("ed", "submit"), ("ap2", "reject"), ("ed", "edit"), ("ed", "submit"),
                     ("ap", "approve"), ("ap", "queue")]


def test_every_transition_is_in_the_table():
    for action, transition in transitions.TRANSITIONS.items():
        assert transition.sources <= set(transitions.STATES), action
        assert transition.target is None or transition.target in transitions.STATES
    with pytest.raises(Forbidden):  # only the delivery itself finishes a delivery, never a person
        transitions.check("finish", "sending", Actor(1, "x", "admin"))


def test_an_emergency_goes_out_with_one_approver_and_is_marked(ctx, people):
    row = alert_workflow.draft(ctx, people["ap"], {**ALERT, "topic": "emergency", "title": "緊急のお知らせ"})
    sent = alert_workflow.send_alone(ctx, people["ap"], row.id)
    assert sent.state == "queued" and sent.sole_approval and sent.approver.name == "ap"


def test_a_scheduled_alert_cancelled_before_its_time_sends_nothing(ctx, people, line, redis_client):
    subscribe = redis_client.pipeline()
    for n in range(30):
        subscribe.sadd("sub:kumamoto:topic:fraud", user(n)).sadd("sub:kumamoto:area:chuo", user(n))
    subscribe.execute()
    later = (dt.datetime.now(JST) + dt.timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    row = alert_workflow.draft(ctx, people["ed"], {**ALERT, "send_now": False, "send_at": later.isoformat()})
    assert alert_workflow.preview(ctx, ALERT)["reach"]["now"] == 30
    scheduled = alert_workflow.approve(ctx, people["ap"], row.id)
    assert scheduled.state == "scheduled" and scheduled.scheduled_for == later
    cancelled = alert_workflow.cancel(ctx, people["ap"], row.id)
    assert cancelled.state == "cancelled"
    # the job RQ releases at 10:00 finds it cancelled and sends nothing
    assert run_with_line(AlertDelivery, redis_client, ctx.settings.with_(line_api_base_url=line.url),
                         row.id) == "cancelled"
    assert line.fake.deliveries == []
    with pytest.raises(Conflict):
        alert_workflow.cancel(ctx, people["ap"], row.id)


def test_a_started_delivery_cannot_be_cancelled(ctx, people, redis_client):
    row = alert_workflow.approve(ctx, people["ap"], alert_workflow.draft(ctx, people["ed"], ALERT).id)
    redis_client.hset(f"alert:{row.id}", "state", "sending")  # a worker took it
    with pytest.raises(Conflict, match="始まって"):
        alert_workflow.cancel(ctx, people["ap"], row.id)
    assert records.get(ctx, row.id).state == "sending"


def test_the_audit_log_is_append_only(ctx, people):
    assert accounts.authenticate(ctx.db, "ed", "wrong") is None
    assert accounts.authenticate(ctx.db, "ed", "long-password-ed") == people["ed"]
    rows = audit.entries(ctx.db)
    assert [r.action for r in rows[:2]] == ["login", "login_failed"]
    with pytest.raises(PermissionError), ctx.db.session() as session:
        entry = session.get(AuditEntry, rows[0].id)
        entry.action = "nothing"
        session.flush()
    with pytest.raises(PermissionError), ctx.db.session() as session:
        session.delete(session.get(AuditEntry, rows[0].id))
        session.flush()
    assert audit.to_csv(audit.entries(ctx.db)).startswith("\ufeffid,日時,職員,操作")


def test_tokens_are_shown_once_stored_hashed_and_revocable(ctx, people):
    token = accounts.issue_token(ctx.db, None, "ed")
    assert accounts.actor_for_token(ctx.db, token) == people["ed"]
    with ctx.db.session() as session:
        stored = session.execute(sqlalchemy.text("SELECT token_hash FROM api_tokens")).scalars().all()
    assert token not in stored and len(stored[0]) == 64
    accounts.disable(ctx.db, "ad", "ed")
    assert accounts.actor_for_token(ctx.db, token) is None
    assert accounts.authenticate(ctx.db, "ed", "long-password-ed") is None


def test_records_survive_a_restart(ctx, people, database_settings):
    row = alert_workflow.approve(ctx, people["ap"], alert_workflow.draft(ctx, people["ed"], ALERT).id)
    ctx.db.close()
    again = Database(ctx.db.url)
    again.upgrade()  # a second start migrates nothing and keeps everything
    try:
        later = Context(again, ctx.redis, ctx.redis_url, ctx.city, ctx.settings)
        kept = records.get(later, row.id)
        assert (kept.title, kept.author.name, kept.approver.name, kept.state) == (ALERT["title"], "ed", "ap", "queued")
        assert accounts.authenticate(again, "ap", "long-password-ap") == people["ap"]
        assert [r.id for r in records.history(later, author="ed")] == [row.id]
    finally:
        again.close()


def test_nothing_is_queued_until_approval(ctx, people, redis_client):
    from rq import Queue

    alert_workflow.draft(ctx, people["ed"], ALERT)
    assert Queue(queue.QUEUE, connection=queue.rq_connection(ctx.redis_url)).count == 0
    assert not redis_client.keys("alert:*")


def test_an_editor_cannot_cancel_a_queued_alert_and_it_still_goes_out(ctx, people, redis_client):
    """Found reading the change: cancel asked Redis first and the table second, so an editor's
    refused cancel had already stopped the delivery in Redis."""
    row = alert_workflow.approve(ctx, people["ap"], alert_workflow.draft(ctx, people["ed"], ALERT).id)
    with pytest.raises(Forbidden):
        alert_workflow.cancel(ctx, people["ed"], row.id)
    assert redis_client.hget(f"alert:{row.id}", "state") == "queued"
    assert records.get(ctx, row.id).state == "queued"


def test_the_staff_commands(database_settings):
    from click.testing import CliRunner

    from bot.cli import cli

    def run(*args, stdin=None):
        return CliRunner().invoke(cli, list(args), obj=database_settings, input=stdin)

    assert run("staff", "add", "tanaka", "--role", "approver", "--password-stdin", stdin="short\n").exit_code == 1
    made = run("staff", "add", "tanaka", "--role", "approver", "--password-stdin", stdin="a-long-password-1\n")
    assert made.exit_code == 0 and "tanaka" in made.output
    token = run("staff", "token", "tanaka")
    assert token.exit_code == 0 and token.stdout.strip().startswith("kb_")
    assert run("staff", "list").stdout.strip() == "tanaka\tapprover\tactive"
    assert run("staff", "disable", "nobody").exit_code == 1
    assert run("staff", "disable", "tanaka").exit_code == 0
    assert run("staff", "list").stdout.strip() == "tanaka\tapprover\tdisabled"
    database = open_database(database_settings)
    try:
        assert accounts.actor_for_token(database, token.stdout.strip()) is None
    finally:
        database.close()
