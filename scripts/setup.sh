#!/usr/bin/env bash
# One-time set-up on Debian/Ubuntu: system packages, a virtual environment, bvvtok with its dev extra.
# Idempotent: each step is skipped when already done. Called by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# fonts-unifont: the glyph substrate's font; fortunes, fortunes-zh: English and Chinese prose for the benchmarks;
# fortunes-bg ... fortunes-ru: prose in other languages for bench/tokenizer_table.py (scripts/fortunes_corpus.py).
SYSTEM_PACKAGES=(fonts-unifont fortunes fortunes-zh
  fortunes-bg fortunes-br fortunes-cs fortunes-de fortunes-es fortunes-it fortunes-pl fortunes-ru)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=("python3-venv")
fi
if ((${#missing[@]})); then
  if command -v apt-get >/dev/null; then
    # another apt-get or dpkg (an unattended upgrade at boot) may hold the lock: apt-get waits for it, 10 minutes at most
    echo "setup: installing ${missing[*]} (if another apt-get or dpkg is running, waiting up to 10 minutes for it)"
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install ${missing[*]} with your system's package manager" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.bvvtok-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "setup: installing bvvtok and its dependencies into $VENV (torch pinned by constraints.txt)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
  touch "$stamp"
fi
