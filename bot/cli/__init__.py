"""Command line: `python -m bot chat | check | evaluate | serve | fake-line | richmenu | worker
| alert | campaign | staff` (README, "Commands").

The commands call the same domain functions as every other surface (runtime, dialogue,
loader, evaluate, bot.broadcast); nothing here re-implements them. One module per command
group; what they share (settings, `--city`, the shared Redis) is in bot.cli.common. The
command modules import only light things at the top, so `python -m bot --help` and the
worker, alert and campaign commands never load the matcher (scikit-learn).
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from bot.cli.alerts import alert
from bot.cli.campaigns import campaign
from bot.cli.chat import chat
from bot.cli.content import check, cmd_check, evaluate
from bot.cli.richmenu import richmenu_command
from bot.cli.serve import fake_line, serve
from bot.cli.staff import staff
from bot.cli.worker import worker
from bot.settings import Settings

__all__ = ["cli", "cmd_check", "main"]

PROG = "python -m bot"


@click.group(help="Kumamoto/Minato safety chatbot", context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    pass


for _command in (chat, check, evaluate, serve, fake_line, richmenu_command, worker, alert, campaign, staff):
    cli.add_command(_command)


@cli.result_callback()
def _exit_with(code: int) -> None:
    """Every command returns its exit code; this ends the program with it (in-process too:
    click's CliRunner sees it as the exit code)."""
    click.get_current_context().exit(code)


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Runs one command line and returns the command's exit code. `settings` stand in for the
    environment's (tests). Usage errors print click's message and exit 2 (SystemExit, as
    argparse did)."""
    try:
        return cli.main(args=None if argv is None else list(argv), prog_name=PROG, obj=settings,
                        standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.Abort:  # Ctrl-C or end of input at a prompt
        click.echo("Aborted!", err=True)
        raise SystemExit(1) from None
