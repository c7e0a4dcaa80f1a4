"""The model card of an export holds as written: its code, copied into an empty folder beside the export (and
nothing else), runs, with the hub offline. A snippet that names the run folder instead of the export fails here."""

import contextlib
import io
import re
import shlex
import shutil

import pytest
from conftest import invoke

transformers = pytest.importorskip("transformers")

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def snippets(card: str) -> list[tuple[str, str]]:
    """Each fenced block of the card: (language, code)."""
    return [(lang, code) for lang, code in FENCE.findall(card)]


@pytest.fixture(scope="module")
def exports(char_run, tmp_path_factory) -> dict:
    """Exports under names of their own (not the run's): a run as stock GPT-NeoX, the same run with its own code,
    and a mixture."""
    root = tmp_path_factory.mktemp("cards")
    assert invoke("combine", char_run, char_run, "--out", root / "mix").exit_code == 0
    found = {}
    for key, run, args in (("run", char_run, ()), ("run-remote", char_run, ("--format", "hf-remote")),
                           ("mixture", root / "mix", ())):  # fmt: skip
        out = root / "exports" / f"tiny-{key}-hf"
        result = invoke("export", run, "--out", out, *args)
        assert result.exit_code == 0, result.output
        found[key] = out
    return found


@pytest.mark.parametrize("key", ["run", "run-remote", "mixture"])
def test_every_snippet_of_the_card_runs_as_written_beside_the_export(exports, key, tmp_path, monkeypatch):
    export = exports[key]
    work = tmp_path / "work"
    shutil.copytree(export, work / export.name)  # the user's folder: the export, under its own name, and nothing else
    monkeypatch.chdir(work)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    card = (work / export.name / "README.md").read_text(encoding="utf-8")
    blocks = snippets(card)
    python = [code for lang, code in blocks if lang == "python"]
    shell = [line for lang, code in blocks if lang in ("sh", "shell", "bash") for line in code.splitlines() if line.strip()]
    assert python
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for code in python:  # one session, in the card's order (the freezing line uses the loaded model)
            exec(compile(code, "README.md", "exec"), namespace)
    assert printed.getvalue().startswith("Once upon a time") and len(printed.getvalue()) > len("Once upon a time\n")
    model, ids = namespace["model"], namespace["ids"]
    if key != "run":  # bvvtok's own code refuses a generate past the context, as the card says
        assert "refused with a `ValueError`" in card
        with pytest.raises(ValueError, match="longer than the context 32 of this model"):
            model.generate(**ids, max_new_tokens=40, do_sample=False)
    for line in shell:
        words = shlex.split(line, comments=True)
        assert words[0] == "bvvtok", line
        result = invoke(*words[1:])
        assert result.exit_code == 0, (line, result.output)
    if key == "run":  # the card says how to take the export back into bvvtok: the folder it writes is a run
        (out,) = [shlex.split(line)[shlex.split(line).index("--out") + 1] for line in shell if " import " in f" {line}"]
        result = invoke("generate", out, "--prompt", "the cat", "--greedy", "--max-new-tokens", "4")
        assert result.exit_code == 0, result.output


def test_the_card_names_the_export_and_no_other_folder(exports, char_run):
    for key, export in exports.items():
        card = (export / "README.md").read_text(encoding="utf-8")
        loaded = re.findall(r'from_pretrained\("([^"]*)"', card)
        assert loaded and set(loaded) == {export.name}
        assert f"bvvtok import {char_run.name} " not in card and f'"{char_run.name}"' not in card
