"""The guide's walkthrough, run for real: docs/guide.md shows what its commands print, because this script wrote it.

    .venv/bin/python scripts/guide.py           # run the walkthrough in a fresh folder; rewrite its output in
                                                # docs/guide.md and its pictures in docs/images/
    .venv/bin/python scripts/guide.py --check   # run it and fail if docs/guide.md shows something else

A walkthrough block is a fenced ```console block of docs/guide.md. Its lines starting with `$ ` are commands (a
trailing backslash continues one on the next line); the lines after a command are what it printed. The commands run
in order, in one fresh folder, as a user would run them in a checkout: `bvvtok` is this Python's bvvtok, `python`
this Python, and scripts/ and docs/ are the checkout's. A picture the guide shows as images/NAME.png is copied from
the walkthrough's artifacts/NAME.png. The check masks what depends on the machine and the moment (seconds, tokens per
second) and allows losses a little slack (another CPU rounds differently); tests/test_guide.py runs it.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bvvtok.files import atomic_file

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide.md"
BLOCK = re.compile(r"^```console\n(.*?)^```$", re.DOTALL | re.MULTILINE)
PICTURE = re.compile(r"\]\(images/([\w.-]+\.png)\)")
LINKED = ("scripts", "docs")  # the checkout's folders the commands read
WIDTH = 80  # a terminal as narrow as most
# What a rerun may change: times and speeds (masked), and losses to the last few digits (compared with slack).
MASKS = (
    (re.compile(r"\d[\d,]*(\.\d+)? s\b"), "# s"),
    (re.compile(r"\d[\d,]*(\.\d+)? (tok/s|tokens/s)"), r"# \2"),
    (re.compile(r"^(│ tokens/s\s+│) [\d,]+"), r"\1 #"),
    (re.compile(r"\d+:\d\d:\d\d"), "#:##:##"),
    (re.compile(r" {2,}"), " "),  # a wider time or speed pads its table differently
    (re.compile(r"([─━═])\1+"), r"\1"),
)
DECIMAL = re.compile(r"-?\d+\.\d{3,}")
SLACK = 0.05  # nats (or bits) a loss may differ by on another machine


@dataclass
class Command:
    text: str  # as written in the guide, continuation lines included
    output: str  # what it printed


def commands(block: str) -> list[Command]:
    """The commands of one console block with the output shown after each."""
    found: list[Command] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise SystemExit(f"docs/guide.md: console block line {lines[i]!r} comes before any `$ ` command")
        text = [lines[i]]
        while text[-1].endswith("\\"):
            i += 1
            text.append(lines[i])
        i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        found.append(Command("\n".join(text), "\n".join(output)))
    return found


def argv(command: str) -> list[str]:
    """The command line as a list, `bvvtok` and `python` replaced by this Python."""
    words = shlex.split(command.removeprefix("$ ").replace("\\\n", " "))
    if words[0] == "bvvtok":
        return [sys.executable, "-m", "bvvtok", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    raise SystemExit(f"docs/guide.md: {words[0]!r} is neither bvvtok nor python; the walkthrough runs only those")


def run(command: Command, folder: Path, env: dict[str, str]) -> str:
    """What the command printed (stdout and stderr as a terminal shows them), the folder's path taken out."""
    done = subprocess.run(argv(command.text), cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)  # fmt: skip
    printed = done.stdout.replace(f"{folder}/", "")
    if done.returncode != 0:
        raise SystemExit(f"{command.text} failed (exit {done.returncode}):\n{printed}")
    lines = [line.rstrip() for line in printed.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def walkthrough(guide: str, folder: Path) -> str:
    """`guide` with every console block's output replaced by what its commands print now, run in `folder`."""
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name)
    env = {**os.environ, "COLUMNS": str(WIDTH), "NO_COLOR": "1", "BVVTOK_CACHE_DIR": str(folder / "cache"),
           "BVVTOK_PROGRESS_S": "inf"}  # the guide shows what a terminal shows: no plain progress lines
    env.pop("BVVTOK_FONT", None)

    def rewrite(match: re.Match) -> str:
        parts = []
        for command in commands(match.group(1)):
            print(command.text, file=sys.stderr, flush=True)
            output = run(command, folder, env)
            parts.append(command.text + ("\n" + output if output else ""))
        return "```console\n" + "\n".join(parts) + "\n```"

    return BLOCK.sub(rewrite, guide)


def masked(line: str) -> str:
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line


def same_line(shown: str, now: str) -> bool:
    """Equal once masked, decimals within SLACK of each other."""
    shown, now = masked(shown), masked(now)
    if DECIMAL.sub("#", shown) != DECIMAL.sub("#", now):
        return False
    return all(abs(float(a) - float(b)) <= SLACK for a, b in zip(DECIMAL.findall(shown), DECIMAL.findall(now)))


def differences(shown: str, now: str) -> list[str]:
    """A unified diff of the console blocks' lines that differ beyond masks and slack; empty if none."""
    a = [line for block in BLOCK.findall(shown) for line in block.splitlines()]
    b = [line for block in BLOCK.findall(now) for line in block.splitlines()]
    if len(a) == len(b) and all(same_line(x, y) for x, y in zip(a, b)):
        return []
    return list(difflib.unified_diff(a, b, "docs/guide.md", "this run", lineterm="", n=1))


def pictures(guide: str, folder: Path) -> list[tuple[Path, Path]]:
    """(made by the walkthrough, shown by the guide) for every picture the guide shows from images/."""
    return [(folder / "artifacts" / name, GUIDE.parent / "images" / name) for name in PICTURE.findall(guide)
            if (folder / "artifacts" / name).is_file()]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/guide.md instead of rewriting it")
    args = parser.parse_args()
    shown = GUIDE.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="bvvtok-guide-") as tmp:
        now = walkthrough(shown, Path(tmp))
        if args.check:
            diff = differences(shown, now)
            print("\n".join(diff) or "docs/guide.md shows what its walkthrough prints")
            return 1 if diff else 0
        for made, shown_as in pictures(now, Path(tmp)):
            with atomic_file(shown_as, force=True) as part:
                shutil.copyfile(made, part)
            print(f"wrote {shown_as.relative_to(ROOT)}", file=sys.stderr)
    with atomic_file(GUIDE, force=True) as part:
        part.write_text(now, encoding="utf-8")
    print(f"wrote {GUIDE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
