"""`staff add | token | revoke | disable | list`: staff accounts, from the server's shell (the
first admin is made this way; admins then add others in the console)."""

from __future__ import annotations

import sys

import click

from bot.cli.common import pass_settings
from bot.settings import Settings


@click.group(help="staff accounts for the console and the staff API")
def staff() -> None:
    pass


def _database(settings: Settings):  # noqa: ANN202
    from bot.staff.db import open_database

    return open_database(settings)


@staff.command("add", help="add a staff account (password asked, or --password-stdin)")
@click.argument("name")
@click.option("--role", type=click.Choice(["editor", "approver", "admin"]), required=True)
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
@pass_settings
def add(settings: Settings, name: str, role: str, password_stdin: bool) -> int:
    from bot.staff import accounts
    from bot.staff.errors import StaffError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("パスワード（12文字以上）", hide_input=True, confirmation_prompt="もう一度")
    database = _database(settings)
    try:
        accounts.add_staff(database, None, name, role, password)
    except StaffError as exc:
        click.echo(exc.message, err=True)
        return 1
    finally:
        database.close()
    click.echo(f"職員「{name}」（{role}）を作りました。")
    return 0


@staff.command("token", help="issue an API token for NAME (shown once; stored only as a hash)")
@click.argument("name")
@pass_settings
def token(settings: Settings, name: str) -> int:
    from bot.staff import accounts
    from bot.staff.errors import StaffError

    database = _database(settings)
    try:
        click.echo(accounts.issue_token(database, None, name))
    except StaffError as exc:
        click.echo(exc.message, err=True)
        return 1
    finally:
        database.close()
    click.echo("このトークンは二度と表示されません。安全な場所に保管してください。", err=True)
    return 0


@staff.command("revoke", help="revoke every API token of NAME")
@click.argument("name")
@pass_settings
def revoke(settings: Settings, name: str) -> int:
    from bot.staff import accounts
    from bot.staff.errors import StaffError

    database = _database(settings)
    try:
        count = accounts.revoke_tokens(database, None, name)
    except StaffError as exc:
        click.echo(exc.message, err=True)
        return 1
    finally:
        database.close()
    click.echo(f"{count}個のトークンを無効にしました。")
    return 0


@staff.command("disable", help="disable NAME: no login, no tokens; the records keep the name")
@click.argument("name")
@pass_settings
def disable(settings: Settings, name: str) -> int:
    from bot.staff import accounts
    from bot.staff.errors import StaffError

    database = _database(settings)
    try:
        accounts.disable(database, None, name)
    except StaffError as exc:
        click.echo(exc.message, err=True)
        return 1
    finally:
        database.close()
    click.echo(f"職員「{name}」を停止しました。")
    return 0


@staff.command("list", help="the staff accounts and their roles")
@pass_settings
def list_staff(settings: Settings) -> int:
    from bot.staff import accounts

    database = _database(settings)
    try:
        for row in accounts.all_staff(database):
            click.echo(f"{row.name}\t{row.role}\t{'active' if row.active else 'disabled'}")
    finally:
        database.close()
    return 0
