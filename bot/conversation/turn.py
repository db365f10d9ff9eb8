"""What one conversational turn takes in (text or a postback) and gives back (a Turn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from linebot.v3.messaging import Message

from bot.understanding.matcher import Candidate


@dataclass(frozen=True)
class TextInput:
    text: str


@dataclass(frozen=True)
class PostbackInput:
    data: str


Input = TextInput | PostbackInput

# Every decision bot.conversation.dialogue produces. answer, clarify, fallback and followup
# are the matcher's (a tapped intent, 「ほかには？」 or phone button gives answer or followup
# too); the others name what the turn answers: the menu, the switch and notice buttons, a
# survey answer (tapped or typed), the alert settings, a follow, a sticker or image.
Decision = Literal["answer", "clarify", "fallback", "followup", "menu", "switch", "notice",
                   "survey", "settings", "welcome", "non_text"]


@dataclass(frozen=True)
class Turn:
    messages: list[Message]
    decision: Decision
    intent: str | None = None
    score: float = 0.0
    candidates: tuple[Candidate, ...] = ()
    # Sensitive turns go out with the reply token only, never as a push (docs/safety.md S1).
    sensitive: bool = False
    lang: str = "ja"
    # The messages' wire form (what LINE receives), computed once; cached answers share it.
    wire: list[dict] | None = None

    def wire_messages(self) -> list[dict]:
        return self.wire if self.wire is not None else [msg.to_dict() for msg in self.messages]


def turn_json(text: str, turn: Turn) -> dict[str, Any]:
    """The stable `chat --json` contract (README): one object per input line."""
    return {
        "text": text,
        "intent": turn.intent if turn.decision == "answer" else None,
        "score": turn.score,
        "candidates": [{"intent": c.intent, "score": c.score} for c in turn.candidates],
        "messages": turn.wire_messages(),
        "decision": turn.decision,
    }
