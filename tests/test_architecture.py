"""The layout is checked, not commented: the import contract in pyproject.toml holds, it
bites when a worker module reaches for the matcher, mypy finds no type error, no module
imports another in a cycle, and every module can be read in one sitting."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from mypy import api as mypy_api

from bot.settings import REPO_ROOT

MAX_LINES = 450


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the `bot` package found first on the path from `root`."""
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", script, "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_the_import_contract_holds() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_type_hints_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mypy, as configured in pyproject.toml ([tool.mypy] checks the `bot` package), finds no error.
    A fresh cache each run (about 20 s) leaves nothing behind."""
    monkeypatch.chdir(REPO_ROOT)
    out, err, code = mypy_api.run(["--config-file", str(REPO_ROOT / "pyproject.toml"),
                                   "--cache-dir", str(tmp_path / "mypy-cache")])
    assert code == 0, out + err


@pytest.mark.parametrize("module, line, broken", [
    # a worker that imports the matcher: both contracts break (it is also an upward import)
    ("broadcast/alerts.py", "from bot.understanding.matcher import Matcher", "Workers never load the matcher"),
    # the content layer reaching up into the conversation
    ("content/loader.py", "from bot.conversation.state import ConversationStore", "Layers: nothing imports upward"),
    # a worker loading scikit-learn itself
    ("line/api.py", "import sklearn", "Workers never load the matcher"),
])
def test_the_contract_bites(tmp_path: Path, module: str, line: str, broken: str) -> None:
    shutil.copytree(REPO_ROOT / "bot", tmp_path / "bot", ignore=shutil.ignore_patterns("__pycache__", "static",
                                                                                       "templates"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "bot" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"{broken} BROKEN" in result.stdout, result.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), function-level imports included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_another_in_a_cycle() -> None:
    assert _cycles(grimp.build_graph("bot")) == []


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "loop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from loop import b\n")
    (package / "b.py").write_text("from loop import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert _cycles(grimp.build_graph("loop", cache_dir=None)) == [["loop.a", "loop.b"]]
    finally:
        sys.path.remove(str(tmp_path))


def test_every_module_reads_in_one_sitting() -> None:
    long = {str(p.relative_to(REPO_ROOT)): n for p in (REPO_ROOT / "bot").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
