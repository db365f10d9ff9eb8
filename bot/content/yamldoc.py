"""Content files as read: YAML with the line of every key path, and the problems found in them.

Every problem names its file, key path and line; `ContentError` carries them all when the
bot refuses to start (bot.content.loader).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str
    line: int | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        return f"{self.severity}: {where}:{key} {self.message}"


class ContentError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(
            f"{len(errors)} content error(s); the bot will not start:\n"
            + "\n".join(str(p) for p in errors)
        )



# ---------------------------------------------------------------- YAML with positions

M = TypeVar("M", bound=BaseModel)


_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Doc:
    """One YAML file: its data, and the line of every key path."""

    def __init__(self, path: Path, rel: str, problems: list[Problem]) -> None:
        self.rel = rel
        self.data: Any = None
        self.node: yaml.Node | None = None
        self.problems = problems
        try:
            text = path.read_text(encoding="utf-8")
            # One parse (libyaml's, when PyYAML has it): the node tree keeps line numbers for
            # messages; the data is built from the same tree.
            loader = _YamlLoader(text)
            try:
                self.node = loader.get_single_node()
                self.data = loader.construct_document(self.node) if self.node is not None else None
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            problems.append(Problem(rel, "", f"YAML syntax: {exc.problem} {exc.context or ''}".strip(),
                                    line=mark.line + 1 if mark else None))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(Problem(rel, "", f"cannot read: {exc}"))
        if self.node is not None:
            self._duplicate_keys(self.node, ())

    def _duplicate_keys(self, node: yaml.Node, loc: tuple) -> None:
        # PyYAML silently keeps the last of two equal keys; content authors must hear of it.
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if key.value in seen:
                    self.problems.append(Problem(self.rel, _path(loc + (key.value,)),
                                                 "duplicate key", line=key.start_mark.line + 1))
                seen.add(key.value)
                self._duplicate_keys(value, loc + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._duplicate_keys(item, loc + (i,))

    def line(self, loc: Iterable[Any]) -> int | None:
        node, best = self.node, None
        for part in loc:
            if node is None:
                break
            best = node.start_mark.line + 1
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == str(part)), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
            else:
                node = None
        if node is not None:
            best = node.start_mark.line + 1
        return best

    def problem(self, loc: Iterable[Any], message: str, severity: str = "error") -> None:
        loc = tuple(loc)
        self.problems.append(Problem(self.rel, _path(loc), message, line=self.line(loc),
                                     severity=severity))  # type: ignore[arg-type]

    def parse(self, model: type[M]) -> M | None:
        if self.data is None and self.node is None:
            if not any(p.file == self.rel for p in self.problems):
                self.problems.append(Problem(self.rel, "", "file is empty"))
            return None
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                self.problem(loc, _message(err))
            return None


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (typo?)"
    return msg
