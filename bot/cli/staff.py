"""`staff add | token | revoke | disable | list`: staff accounts, from the server's shell (the
first admin is made this way; admins then add others in the console)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from bot.cli.common import pass_settings
from bot.settings import Settings


@click.group(help="staff accounts for the console and the staff API")
def staff() -> None:
    pass


def on_records(settings: Settings, action: Callable[[Any], str]) -> int:
    """Run `action(database)` on the records and print what it returns; a refusal (an unknown
    name, a short password...) is one line on stderr and exit 1."""
    # the records (SQLAlchemy, Alembic) load for these commands only
    from bot.staff.db import open_database
    from bot.staff.errors import StaffError

    database = open_database(settings)
    try:
        message = action(database)
        if message:
            click.echo(message)
    except StaffError as exc:
        click.echo(exc.message, err=True)
        return 1
    finally:
        database.close()
    return 0


@staff.command("add", help="add a staff account (password asked, or --password-stdin)")
@click.argument("name")
@click.option("--role", type=click.Choice(["editor", "approver", "admin"]), required=True)
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@pass_settings
def add(settings: Settings, name: str, role: str, password_stdin: bool) -> int:
    from bot.staff import accounts

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("パスワード（12文字以上）", hide_input=True, confirmation_prompt="もう一度")

    def create(db: Any) -> str:
        accounts.add_staff(db, None, name, role, password)
        return f"職員「{name}」（{role}）を作りました。"

    return on_records(settings, create)


@staff.command("token", help="issue an API token for NAME (shown once; stored only as a hash)")
@click.argument("name")
@pass_settings
def token(settings: Settings, name: str) -> int:
    from bot.staff import accounts

    code = on_records(settings, lambda db: accounts.issue_token(db, None, name))
    if code == 0:
        click.echo("このトークンは二度と表示されません。安全な場所に保管してください。", err=True)
    return code


@staff.command("revoke", help="revoke every API token of NAME")
@click.argument("name")
@pass_settings
def revoke(settings: Settings, name: str) -> int:
    from bot.staff import accounts

    return on_records(settings, lambda db: f"{accounts.revoke_tokens(db, None, name)}個のトークンを無効にしました。")


@staff.command("disable", help="disable NAME: no login, no tokens; the records keep the name")
@click.argument("name")
@pass_settings
def disable(settings: Settings, name: str) -> int:
    from bot.staff import accounts


    def stop(db: Any) -> str:
        accounts.disable(db, None, name)
        return f"職員「{name}」を停止しました。"

    return on_records(settings, stop)


@staff.command("list", help="the staff accounts and their roles")
@pass_settings
def list_staff(settings: Settings) -> int:
    from bot.staff import accounts

    return on_records(settings, lambda db: "\n".join(
        f"{row.name}\t{row.role}\t{'active' if row.active else 'disabled'}" for row in accounts.all_staff(db)))
