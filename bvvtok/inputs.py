"""Files a user names as input: a wrong path gets the same one-line error in every command.

A missing file is "not found", not "unsupported" or "not a run folder": the fix is
to check the path, and the message should say so before anything else about the file.
"""

from __future__ import annotations

from pathlib import Path

from bvvtok.errors import BvvtokError


def check_input_file(path: Path) -> Path:
    """`path` if it names an existing file; otherwise say what it is instead."""
    path = Path(path)
    if not path.exists():
        raise BvvtokError(f"{path} not found; check the path")
    if path.is_dir():
        raise BvvtokError(f"{path} is a folder; give a file")
    return path


def check_input_folder(path: Path, hint: str) -> Path:
    """`path` if it names an existing folder; `hint` says which folder is wanted."""
    path = Path(path)
    if not path.exists():
        raise BvvtokError(f"{path} not found; check the path")
    if not path.is_dir():
        raise BvvtokError(f"{path} is not a folder; {hint}")
    return path


def read_text_file(path: Path) -> str:
    """The whole of a UTF-8 text file; a missing, binary or unreadable file is a one-line error."""
    path = check_input_file(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BvvtokError(f"{path} is not UTF-8 (byte {e.start}); convert it to UTF-8") from None
    except OSError as e:
        raise BvvtokError(f"cannot read {path}: {e.strerror}; give a readable text file") from None
