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
README = ROOT / "README.md"
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


def command_pages() -> dict[str, set[Path]]:
    """The pages README's command table gives each command: its own row's, else its group's (`experiment status`
    is in the row of `bvvtok experiment run`)."""
    rows = [line.strip().strip("|").split(" | ") for line in README.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `bvvtok ")]  # fmt: skip
    pages: dict[str, set[Path]] = {}
    for name in commands():
        for names, *_, links in rows:
            if mentioned(names, f"bvvtok {name}") or mentioned(names, f"bvvtok {name.split()[0]}"):
                pages.setdefault(name, set()).update(ROOT / target.split("#")[0] for target in LINK.findall(links))
    return pages


def test_every_option_flag_is_documented():
    """Each command's flags on the page README's command table gives it: a flag named on another command's page
    does not count."""
    pages = command_pages()
    assert set(pages) == set(commands()), "commands missing from README's command table"
    missing = [
        f"{name} ({', '.join(sorted(p.name for p in pages[name]))}): {flag}"
        for name, command in commands().items()
        for param in command.params
        if param.param_type_name == "option" and not param.hidden
        for flag in (*param.opts, *param.secondary_opts)
        if flag.startswith("--") and flag != "--help"
        and not any(mentioned(page.read_text(encoding="utf-8"), flag) for page in pages[name])
    ]
    assert not missing, "option flags not mentioned on their command's page:\n" + "\n".join(missing)


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
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def relative_links(page: Path) -> list[str]:
    """The relative targets of a Markdown page's links and images, #fragments kept, outside code."""
    text = INLINE_CODE.sub("", FENCED.sub("", page.read_text(encoding="utf-8")))
    targets = LINK.findall(text) + REFERENCE.findall(text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I)]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: its text as shown (link targets and code marks gone), lower case, without
    punctuation other than - and _, spaces as -."""
    shown = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", shown.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The #fragments a page's headings answer to; a repeated heading's as GitHub numbers them (-1, -2, ...)."""
    found: set[str] = set()
    for heading in HEADING.findall(FENCED.sub("", page.read_text(encoding="utf-8"))):
        base = anchor(heading)
        found.add(next(a for n in range(len(found) + 1) if (a := base if n == 0 else f"{base}-{n}") not in found))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    """Each relative link reaches a file, and its #fragment a heading of that page."""
    broken = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        file = (page.parent / path) if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)} has broken links: " + ", ".join(broken)


def test_link_finder(tmp_path):
    """The finder sees links and images, skips URLs and code."""
    page = tmp_path / "p.md"
    page.write_text(
        '[a](docs/train.md) ![b](images/foo.png "t") [c](https://x.org/a.md) [d](#top) [e](embed.md#bits)\n'
        "`[f](nope.md)`\n```\n[g](nope2.md)\n```\n[h]: ref.md\n",
        encoding="utf-8",
    )
    assert relative_links(page) == ["docs/train.md", "images/foo.png", "#top", "embed.md#bits", "ref.md"]


def test_anchors_follow_githubs_rule(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# `bvvtok train`, `bvvtok prepare`\n## What bvvtok writes (and never touches)\n## Errors\n"
                    "```\n# not a heading\n```\n## Errors\n### [Corpus formats](train.md) 1.5\n", encoding="utf-8")  # fmt: skip
    assert anchors(page) == {"bvvtok-train-bvvtok-prepare", "what-bvvtok-writes-and-never-touches", "errors",
                             "errors-1", "corpus-formats-15"}  # fmt: skip


# a file of the project: a path from one of its folders, a dot-folder, or a page (NAME.md), not inside a longer path
PROJECT_NAME = re.compile(r"(?<![\w./~$-])((?:\.[a-z][\w-]*|bench|bvvtok|docs|experiments|fonts|scripts|tests)/(?!\.)"
                          r"[\w./-]*|[\w-]+\.md\b)")  # fmt: skip
URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.I)


def named_files(text: str) -> list[str]:
    """The project files a page names, in text or code (not in URLs)."""
    return [name.rstrip("./") or name for name in PROJECT_NAME.findall(URL.sub("", text))]


def ignored(name: str) -> bool:
    """Whether `name` is in a folder .gitignore names: something the project writes (bench/out/, .venv/)."""
    folders = [line.strip("/") for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
               if line.endswith("/")]  # fmt: skip
    return any(name == folder or name.startswith(folder + "/") for folder in folders)


@pytest.mark.parametrize("page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_pages_name_only_files_the_project_has(page):
    pages = {p.name for p in PAGES}
    unknown = [name for name in named_files(page.read_text(encoding="utf-8"))
               if not ((ROOT / name).exists() or ignored(name) or name in pages)]  # fmt: skip
    assert not unknown, f"{page.relative_to(ROOT)} names files the project does not have: " + ", ".join(unknown)


def test_named_files_finder():
    text = ("see recipe.md and `docs/train.md`, then .devcarry/ (bench/out/gpu.json; ~/.cache/bvvtok/tokens/, "
            "https://hf.co/docs/x.md, /usr/share/fonts/a.otf, .otf/.ttf).")  # fmt: skip
    assert named_files(text) == ["recipe.md", "docs/train.md", ".devcarry", "bench/out/gpu.json"]
