"""`chat`: talk to the bot in the terminal, or one JSON object per input line (`--json`)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

import click

from bot.cli.common import city_option, pass_settings
from bot.content.yamldoc import ContentError
from bot.settings import Settings

if TYPE_CHECKING:  # the runtime and the turn bring the matcher (scikit-learn): imported when chat runs
    from bot.conversation.dialogue import Dialogue


@click.command(help="chat with the bot in the terminal")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per input line (machine contract)")
@click.option("--user", default="Ucli00000000000000000000000000000", help="LINE-style user id")
@pass_settings
@city_option
def chat(settings: Settings, as_json: bool, user: str) -> int:
    return cmd_chat(settings, user, as_json)


def cmd_chat(settings: Settings, user: str, as_json: bool,
             stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    # the matcher (scikit-learn) loads here, not when any other command starts
    from bot.conversation.turn import TextInput, turn_json
    from bot.runtime import build

    stdin, out = stdin or sys.stdin, out or sys.stdout
    try:
        runtime = build(settings)
    except ContentError as exc:
        click.echo(exc, err=True)
        return 1
    except KeyError as exc:
        click.echo(exc.args[0], err=True)
        return 2
    try:
        dialogue = runtime.dialogue()
        if as_json:
            for line in stdin:
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                turn = dialogue.respond(user, TextInput(text))
                out.write(json.dumps(turn_json(text, turn), ensure_ascii=False) + "\n")
                out.flush()
            return 0
        return _interactive(dialogue, user, stdin, out, settings.city)
    finally:
        runtime.close()


def _interactive(dialogue: Dialogue, user: str, stdin: TextIO, out: TextIO, city: str) -> int:
    from bot.conversation.turn import Input, PostbackInput, TextInput  # loaded by cmd_chat already

    print(f"[{city}] 話しかけてください（番号でボタンを押せます / Ctrl-D か /quit で終了）", file=out)
    actions: list[dict[str, Any]] = []
    while True:
        out.write("\nあなた> ")
        out.flush()
        line = stdin.readline()
        if not line or line.strip() in ("/quit", "/exit"):
            print("", file=out)
            return 0
        text = line.strip()
        if not text:
            continue
        inp: Input = TextInput(text)
        if text.isdigit() and 1 <= int(text) <= len(actions):
            action = actions[int(text) - 1]
            if action.get("displayText"):
                print(f"（{action['displayText']}）", file=out)
            inp = PostbackInput(action["data"])
        started = time.perf_counter()
        turn = dialogue.respond(user, inp)
        elapsed = (time.perf_counter() - started) * 1000
        rendered, actions = render(turn.messages)
        print(rendered, file=out)
        print(f"  ({turn.decision} {turn.intent or ''} {turn.score:.0f}, {elapsed:.0f} ms)", file=out)


def render(messages: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Messages as terminal text; returns the quick-reply actions, numbered from 1."""
    lines: list[str] = []
    actions: list[dict[str, Any]] = []
    for message in messages:
        wire = message.to_dict()
        if wire["type"] == "text":
            lines.append("ボット> " + wire["text"].replace("\n", "\n      "))
        elif wire["type"] == "flex":
            container = wire["contents"]
            for bubble in container["contents"] if container["type"] == "carousel" else [container]:
                lines.append(_render_bubble(bubble))
        for item in (wire.get("quickReply") or {}).get("items", []):
            actions.append(item["action"])
    if actions:
        lines.append("  " + "  ".join(f"[{n}] {a['label']}" for n, a in enumerate(actions, 1)))
    return "\n".join(lines), actions


def _render_bubble(bubble: dict[str, Any]) -> str:
    texts = [c["text"] for c in bubble["body"]["contents"] if c["type"] == "text"]
    buttons = [c["action"] for c in bubble.get("footer", {}).get("contents", []) if c["type"] == "button"]
    out = ["  ┌ " + texts[0]] + ["  │ " + t for t in texts[1:]]
    out += [f"  │ [{b['label']}] {b['uri']}" for b in buttons]
    out.append("  └")
    return "\n".join(out)
