"""The docs keep up with the code: every command and option is documented, docs/errors.md is current, links resolve."""

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from bvvtok.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = {"errors.md"}  # lists flags in error messages only: it documents nothing by itself


def written_docs() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md")) if p.name not in GENERATED)


def commands() -> dict[str, Any]:
    """Every subcommand of the CLI by its full name ("build-vocab", or "group sub" for nested groups).

    Click objects, but from whichever click typer brings (it may vendor its own), so no isinstance(click.X).
    """
    found: dict[str, Any] = {}

    def walk(group: Any, prefix: str) -> None:
        for name, command in group.commands.items():
            found[prefix + name] = command
            if hasattr(command, "commands"):
                walk(command, f"{prefix}{name} ")

    root = typer.main.get_command(app)
    assert hasattr(root, "commands"), "the bvvtok app is expected to be a group of commands"
    walk(root, "")
    return found


def mentioned(text: str, word: str) -> bool:
    """`word` in `text` with neither a letter, digit, _ nor - on either side (--top is not --top-k)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


def test_every_command_is_documented():
    text = written_docs()
    missing = [name for name in commands() if not mentioned(text, f"bvvtok {name}")]
    assert not missing, "commands not named as `bvvtok NAME` in docs/: " + ", ".join(missing)


def test_every_option_flag_is_documented():
    text = written_docs()
    missing = [
        f"{name}: {flag}"
        for name, command in commands().items()
        for param in command.params
        if param.param_type_name == "option" and not param.hidden
        for flag in (*param.opts, *param.secondary_opts)
        if flag.startswith("--") and flag != "--help" and not mentioned(text, flag)
    ]
    assert not missing, "option flags not mentioned in docs/:\n" + "\n".join(missing)


def load_catalog_script():
    spec = importlib.util.spec_from_file_location("error_catalog", ROOT / "scripts" / "error_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_error_catalog_is_current():
    expected = load_catalog_script().render_catalog(ROOT)
    page = DOCS / "errors.md"
    assert page.is_file(), "docs/errors.md is missing; run python scripts/error_catalog.py"
    assert page.read_text(encoding="utf-8") == expected, "docs/errors.md is stale; run python scripts/error_catalog.py"


def test_error_catalog_lists_every_raise():
    """Each `raise BvvtokError` in the package is one entry: a message that changes changes the page."""
    catalog = load_catalog_script()
    sources = sorted((ROOT / "bvvtok").rglob("*.py"))
    raised = sum(len(catalog.module_entries(f, f.relative_to(ROOT).as_posix())) for f in sources)
    assert raised > 0
    statements = re.compile(r"^\s*raise BvvtokError\b", re.M)
    assert raised == sum(len(statements.findall(p.read_text(encoding="utf-8"))) for p in sources)
    page = catalog.render_catalog(ROOT)
    assert "`error: `" in page and "exit code 2" in page and "Exit code 1" in page


FENCED = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"(`+).*?\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)


def relative_links(page: Path) -> list[str]:
    """The relative targets of a Markdown page's links and images, outside code, without #fragments."""
    text = INLINE_CODE.sub("", FENCED.sub("", page.read_text(encoding="utf-8")))
    targets = LINK.findall(text) + REFERENCE.findall(text)
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I) and t.split("#")[0]]


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = [t for t in relative_links(page) if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: " + ", ".join(broken)


def test_link_finder(tmp_path):
    """The finder sees links and images, skips URLs, anchors and code."""
    page = tmp_path / "p.md"
    page.write_text(
        '[a](docs/train.md) ![b](images/foo.png "t") [c](https://x.org/a.md) [d](#top) [e](embed.md#bits)\n'
        "`[f](nope.md)`\n```\n[g](nope2.md)\n```\n[h]: ref.md\n",
        encoding="utf-8",
    )
    assert relative_links(page) == ["docs/train.md", "images/foo.png", "embed.md", "ref.md"]
