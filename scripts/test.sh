#!/usr/bin/env sh
# Install everything the tests need, then run the whole suite. This is the
# README's test command and what CI runs (.ci/run).
set -eu
cd "$(dirname "$0")/.."

# The browser test drives Debian's Chromium (Playwright does not download one here).
# fonts-noto-cjk makes Japanese readable in its screenshots.
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "The browser test needs Debian's chromium and fonts-noto-cjk: install them, or run as root." >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
fi

# The records' tests run on a real PostgreSQL too: the one on 127.0.0.1:5432 if it answers,
# else Debian's cluster, which tests/staff starts (pg_ctlcluster); install it if missing.
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "The records' tests need PostgreSQL: install Debian's postgresql, or run as root." >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q -r requirements-dev.txt
# the package itself, editable, without touching the pins (benchmarks import it from anywhere)
.venv/bin/pip install -q --no-deps -e .
exec .venv/bin/python -m pytest "$@"
