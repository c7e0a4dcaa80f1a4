import gzip
import hashlib
import json
import re
import shlex

import pytest
import typer
from conftest import assert_user_error, invoke
from tokenizers import Tokenizer

from bvvtok import __version__
from bvvtok.cli import app
from bvvtok.vocab.build import build_vocab, save_vocab
from bvvtok.vocab.stats import load_stats

def leaf_commands(group, prefix: str = "") -> dict:
    """Every command by its full name: "train", or "experiment run" for a command of a group."""
    found = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found |= leaf_commands(command, f"{prefix}{name} ")
        else:
            found[prefix + name] = command
    return found


LEAVES = leaf_commands(typer.main.get_command(app))
COMMANDS = sorted(LEAVES)
CORPUS = ["the the the then", "the cat"]


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"bvvtok {__version__}"


def test_the_documented_commands_exist():
    assert {"build-vocab", "ngrams", "encode"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = invoke(*command.split(), "--help")
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout


def help_page(*command: str) -> str:
    """The rendered --help, wide enough that no line of it wraps."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*" ".join(command).split(), "--help"], env={"COLUMNS": "250"}, prog_name="bvvtok")
    assert result.exit_code == 0, result.output
    return result.stdout


def params(command: str) -> list:
    """The command's parameters, its --help included."""
    click_command = LEAVES[command]
    ctx = click_command.make_context(command, ["--help"], resilient_parsing=True)
    return click_command.get_params(ctx)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_keeps_bracketed_words(command):
    """A help text's `[model]` is a word, not Rich markup that vanishes (issue 20, item 9)."""
    page = help_page(command)
    click_command = LEAVES[command]
    texts = [click_command.help, click_command.epilog, *(p.help for p in params(command))]
    words = [w for text in texts if text for w in re.findall(r"\[[\w/ -]+\]", text.replace("\\[", "["))]
    missing = [w for w in words if w not in page]
    assert not missing, f"{command} --help lost {missing}"


PYTHON_TYPE = re.compile(r"<(bool|str|int|float|path|list\[\w+\])>", re.I)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_metavars_not_python_types(command):
    """Flags show no metavar, arguments and options a user-facing one (DIR, FILE.png, N), never `<list[Path]>`."""
    page = help_page(*filter(None, [command]))
    assert not PYTHON_TYPE.search(page), PYTHON_TYPE.search(page)
    if command:
        untyped = [p.name for p in params(command) if not getattr(p, "is_flag", False) and not p.metavar and p.name != "text"]
        assert not untyped, f"{command}: give {untyped} a metavar"


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_line_reads_like_click(command):
    """`Usage: bvvtok embed [OPTIONS] VOCAB_DIR`: optional arguments in brackets, several with ..., no braces."""
    usage = next(line.strip() for line in help_page(command).splitlines() if "Usage:" in line)
    assert re.fullmatch(rf"Usage: bvvtok {command} \[OPTIONS\]( [A-Z_]+(\.\.\.)?| \[[A-Z_]+(\.\.\.)?\])*", usage), usage


@pytest.mark.parametrize("command", COMMANDS)
def test_every_output_path_is_out_or_o(command):
    """Where a command writes is `--out`, or `-o` for short, on every command that has one."""
    outs = [p for p in params(command) if p.name == "out" or "-o" in p.opts]
    for param in outs:
        assert sorted(param.opts) == ["--out", "-o"] or param.name == "results", (command, param.opts)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_shows_an_example_that_parses(command):
    """Each --help ends with `Example:` and a command line of that command whose flags exist and which parses."""
    click_command = LEAVES[command]
    lines = [line for line in (click_command.epilog or "").splitlines() if line.startswith(f"bvvtok {command} ")]
    assert len(lines) == 1, f"{command} has no example line `bvvtok {command} ...` in its epilog"
    assert lines[0] in help_page(command)
    args = shlex.split(lines[0])[1 + len(command.split()) :]
    flags = {opt for p in params(command) for opt in (*p.opts, *p.secondary_opts)}
    unknown = [a for a in args if a.startswith("-") and a not in flags]
    assert not unknown, f"the example of {command} uses {unknown}, which it does not have"
    click_command.make_context(command, args)  # raises on a missing argument or a bad value


def test_train_help_shows_the_presets_defaults():
    page = help_page("train")
    assert "Default (by --preset): tiny 256, paper 1,024, paper-grow 4,096." in page  # --d-model
    assert "Default (by --preset): tiny 800, paper 100,000, paper-grow 100,000." in page  # --steps


def test_top_level_help():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in COMMANDS:  # a group's commands on its own page
        group, _, sub = command.rpartition(" ")
        assert (group or sub) in result.stdout
        assert sub in (help_page(group) if group else result.stdout)


# --- build-vocab ---


def test_build_vocab_writes_the_folder(tiny_stats, tmp_path):
    out = tmp_path / "vocab"
    result = invoke("build-vocab", "--ngrams", tiny_stats, "--out", out)
    assert result.exit_code == 0, result.output
    assert "6 placed" in result.stdout
    manifest = json.loads((out / "bvvtok.json").read_text(encoding="utf-8"))
    assert manifest["vocab"]["languages"] == ["en"]
    assert manifest["vocab"]["preset"] == "65k"
    library = tmp_path / "library"
    save_vocab(build_vocab("65k", [tiny_stats]), library)
    for name in manifest["files"]:
        assert (out / name).read_bytes() == (library / name).read_bytes(), name


def test_build_vocab_default_out(tiny_stats, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("build-vocab", "--preset", "bvv241-2-3", "--ngrams", tiny_stats)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "artifacts" / "vocab-65k" / "tokenizer.json").is_file()


def test_build_vocab_force_never_replaces_a_foreign_folder(tiny_stats, tmp_path):
    out = tmp_path / "vocab"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    result = invoke("build-vocab", "--ngrams", tiny_stats, "--out", out, "--force")
    assert_user_error(result, "notes.txt", "did not write")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_build_vocab_unknown_preset(tmp_path):
    result = invoke("build-vocab", "--preset", "nope", "--out", tmp_path / "out")
    assert_user_error(result, "nope")
    assert not (tmp_path / "out").exists()


def test_build_vocab_missing_ngrams_file(tmp_path):
    result = invoke("build-vocab", "--ngrams", tmp_path / "missing.txt", "--out", tmp_path / "out")
    assert_user_error(result, "missing.txt")
    assert not (tmp_path / "out").exists()


def test_build_vocab_malformed_stats(tmp_path):
    bad = tmp_path / "bad-stats.txt"
    bad.write_text("[{'lang': 'en', 'top_ngrams': {2: [('th', 'x')]}}]", encoding="utf-8")
    assert_user_error(invoke("build-vocab", "--ngrams", bad, "--out", tmp_path / "out"), "bad-stats.txt")
    bad.write_text("[{'lang': 'en', 'top_ngrams': {2: [('th', 1)]}", encoding="utf-8")
    assert_user_error(invoke("build-vocab", "--ngrams", bad, "--out", tmp_path / "out"), "bad-stats.txt")
    assert not (tmp_path / "out").exists()


def test_build_vocab_unknown_language(tiny_stats, tmp_path):
    result = invoke("build-vocab", "--ngrams", tiny_stats, "--langs", "en,xx", "--out", tmp_path / "out")
    assert_user_error(result, "xx")
    assert not (tmp_path / "out").exists()


def test_build_vocab_top_k_zero(tiny_stats, tmp_path):
    result = invoke("build-vocab", "--ngrams", tiny_stats, "--top-k", "0", "--out", tmp_path / "out")
    assert_user_error(result, "top-k")


def test_build_vocab_statistics_that_fill_no_slot(write_stats, tmp_path):
    stats = write_stats([{"lang": "en", "top_ngrams": {1: [("a", 5)]}}])
    assert_user_error(invoke("build-vocab", "--ngrams", stats, "--out", tmp_path / "out"), "slots")


def test_build_vocab_refuses_a_foreign_non_empty_out(tiny_stats, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert_user_error(invoke("build-vocab", "--ngrams", tiny_stats, "--out", out), "did not write")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_build_vocab_refuses_an_existing_bvvtok_folder(tiny_stats, tmp_path):
    out = tmp_path / "out"
    assert invoke("build-vocab", "--ngrams", tiny_stats, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert_user_error(invoke("build-vocab", "--ngrams", tiny_stats, "--out", out), "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --- encode ---


def test_encode_shows_ids(tiny_vocab_dir):
    expected = Tokenizer.from_file(str(tiny_vocab_dir / "tokenizer.json")).encode("hello the test").ids
    result = invoke("encode", "--vocab", tiny_vocab_dir, "hello the test")
    assert result.exit_code == 0, result.output
    assert f"ids: {expected}" in result.stdout
    assert "<unk>:" not in result.stdout


def test_encode_counts_in_words_that_agree(tiny_vocab_dir):
    """`1 token, 1 character`, never `1 characters` (bvvtok.difference.plural; issue 20, item 11)."""
    result = invoke("encode", "--vocab", tiny_vocab_dir, "a")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].strip() == "1 token, 1 character"


def test_encode_reports_unknown_characters(tiny_vocab_dir):
    result = invoke("encode", "--vocab", tiny_vocab_dir, "a\U0001F600b\U0001F600")
    assert result.exit_code == 0, result.output
    assert "ids: [97, 57347, 98, 57347]" in result.stdout
    assert "U+1F600" in result.stdout
    assert "<unk>: 1 character" in result.stdout


def test_encode_without_a_tokenizer(tmp_path):
    assert_user_error(invoke("encode", "--vocab", tmp_path, "hi"), "tokenizer.json")


# --- ngrams ---


def write_corpus(folder, kind):
    if kind == "txt":
        path = folder / "en.txt"
        path.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
        return path
    lines = "".join(json.dumps({"text": t}) + "\n" for t in CORPUS).encode("utf-8")
    if kind == "jsonl":
        path = folder / "en.jsonl"
        path.write_bytes(lines)
    else:
        path = folder / "en.jsonl.gz"
        path.write_bytes(gzip.compress(lines))
    return path


@pytest.mark.parametrize("kind", ["txt", "jsonl", "jsonl.gz"])
def test_ngrams_counts_a_corpus(tmp_path, kind):
    corpus = write_corpus(tmp_path, kind)
    out = tmp_path / "stats.json"
    result = invoke("ngrams", "--input", f"en={corpus}", "--out", out, "--orders", "2,3", "--top", "5")
    assert result.exit_code == 0, result.output
    stats = load_stats(out)
    (en,) = stats.languages
    assert en.lang == "en"
    assert en.chars == 19
    assert en.top_ngrams[2][:3] == [("he", 5), ("th", 5), ("at", 1)]
    assert en.top_ngrams[3][0] == ("the", 5)
    assert len(en.top_ngrams[2]) == 5
    assert stats.meta["rule"] == "default"


def test_ngrams_output_builds_a_vocabulary(tmp_path):
    corpus = write_corpus(tmp_path, "txt")
    stats = tmp_path / "stats.json"
    assert invoke("ngrams", "--input", f"en={corpus}", "--out", stats).exit_code == 0
    build = build_vocab("65k", [stats])
    assert build.manifest["vocab"]["selection"]["rule"] == "balanced"
    assert "the" in build.layout.placed


def test_ngrams_several_languages_and_the_bvv241_rule(tmp_path):
    en = write_corpus(tmp_path, "txt")
    el = tmp_path / "el"
    el.mkdir()
    (el / "a.txt").write_text("καλή μέρα\n", encoding="utf-8")
    out = tmp_path / "stats.json"
    result = invoke("ngrams", "--input", f"en={en}", "--input", f"el={el}", "--out", out, "--orders", "2")
    assert result.exit_code == 0, result.output
    assert load_stats(out).codes == ["en", "el"]
    result = invoke("ngrams", "--input", f"el={el}", "--out", tmp_path / "bvv.json", "--rule", "bvv241")
    assert_user_error(result, "no countable text")
    assert not (tmp_path / "bvv.json").exists()


def test_ngrams_input_without_equals(tmp_path):
    assert_user_error(invoke("ngrams", "--input", tmp_path / "en.txt", "--out", tmp_path / "s.json"), "LANG=PATH")


def test_ngrams_missing_path(tmp_path):
    assert_user_error(invoke("ngrams", "--input", f"en={tmp_path / 'nowhere.txt'}", "--out", tmp_path / "s.json"), "nowhere.txt")


def test_ngrams_bad_orders(tmp_path):
    corpus = write_corpus(tmp_path, "txt")
    assert_user_error(invoke("ngrams", "--input", f"en={corpus}", "--out", tmp_path / "s.json", "--orders", "2,x"), "--orders")


@pytest.mark.parametrize(
    "content, where",
    [('{"text": "ok"}\nnot json\n', "bad.jsonl:2"), ('{"body": "no text"}\n', "bad.jsonl:1")],
    ids=["not-json", "no-text"],
)
def test_ngrams_bad_jsonl_line(tmp_path, content, where):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    result = invoke("ngrams", "--input", f"en={path}", "--out", tmp_path / "s.json")
    assert_user_error(result, where)
    assert not (tmp_path / "s.json").exists()


def test_ngrams_non_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème\n".encode("latin-1"))
    assert_user_error(invoke("ngrams", "--input", f"fr={path}", "--out", tmp_path / "s.json"), "latin1.txt", "UTF-8")


def test_ngrams_out_exists(tmp_path):
    corpus = write_corpus(tmp_path, "txt")
    out = tmp_path / "s.json"
    out.write_text("keep", encoding="utf-8")
    assert_user_error(invoke("ngrams", "--input", f"en={corpus}", "--out", out), "--force")
    assert out.read_text(encoding="utf-8") == "keep"
    assert invoke("ngrams", "--input", f"en={corpus}", "--out", out, "--force").exit_code == 0
    assert load_stats(out).codes == ["en"]


def test_ngrams_reports_workers_throughput_and_pruning(tmp_path):
    corpus = write_corpus(tmp_path, "txt")
    out = tmp_path / "s.json"
    result = invoke("ngrams", "--input", f"en={corpus}", "--out", out, "--orders", "2,3", "--top", "2", "--max-entries", "4", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert re.search(r"rule default, 2 workers, 0\.0 MB in [0-9.]+ s \([0-9.]+ MB/s\)", result.stdout)
    bound = load_stats(out).meta["max_undercount"]["en"]
    assert bound > 0
    assert f"a count may be low by at most {bound} (en)" in " ".join(result.stdout.split())


def test_build_vocab_from_a_corpus_equals_ngrams_then_build_vocab(tmp_path):
    en = write_corpus(tmp_path, "txt")
    zh = tmp_path / "zh"
    zh.mkdir()
    (zh / "a.txt").write_text("中文字符，中文。\n我们的中文\n", encoding="utf-8")
    stats = tmp_path / "stats.json"
    counting = ["--rule", "bvv241", "--orders", "2,3", "--top", "50"]
    assert invoke("ngrams", "--input", f"en={en}", "--input", f"zh={zh}", "--out", stats, *counting).exit_code == 0
    assert invoke("build-vocab", "--ngrams", stats, "--out", tmp_path / "two-steps").exit_code == 0
    result = invoke("build-vocab", "--corpus", f"en={en}", "--corpus", f"zh={zh}", *counting, "--workers", "2", "--out", tmp_path / "one")
    assert result.exit_code == 0, result.output
    assert "2 workers" in result.stdout
    assert (tmp_path / "one" / "tokenizer.json").read_bytes() == (tmp_path / "two-steps" / "tokenizer.json").read_bytes()
    (recorded,) = json.loads((tmp_path / "one" / "bvvtok.json").read_text(encoding="utf-8"))["vocab"]["inputs"]
    assert (recorded["role"], recorded["source"], recorded["rule"]) == ("ngrams", "corpus", "bvv241")
    assert [(c["lang"], c["name"], c["bytes"]) for c in recorded["corpus"]] == [("en", "en.txt", en.stat().st_size), ("zh", "a.txt", (zh / "a.txt").stat().st_size)]
    assert recorded["corpus"][0]["sha256"] == hashlib.sha256(en.read_bytes()).hexdigest()


def test_build_vocab_corpus_and_ngrams_are_combined(tmp_path, tiny_stats):
    el = tmp_path / "el.txt"
    el.write_text("καλή καλή μέρα\n", encoding="utf-8")
    result = invoke("build-vocab", "--ngrams", tiny_stats, "--corpus", f"el={el}", "--workers", "1", "--out", tmp_path / "v")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "v" / "bvvtok.json").read_text(encoding="utf-8"))
    assert manifest["vocab"]["languages"] == ["en", "el"]
    assert [i.get("source", i.get("file")) for i in manifest["vocab"]["inputs"]] == ["tiny-stats.txt", "corpus"]


def test_build_vocab_counting_flags_need_a_corpus(tmp_path):
    assert_user_error(invoke("build-vocab", "--rule", "bvv241", "--out", tmp_path / "v"), "--rule: only for counting a corpus; give --corpus LANG=PATH")
    assert_user_error(invoke("build-vocab", "--top", "5", "--workers", "2", "--out", tmp_path / "v"), "--top, --workers: only for counting a corpus")
    assert_user_error(invoke("build-vocab", "--corpus", str(tmp_path), "--out", tmp_path / "v"), "--corpus", "is not LANG=PATH")
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("value", ["[red]en.txt", "[/x]"])
def test_error_messages_are_printed_verbatim(tmp_path, value):
    result = invoke("ngrams", "--input", value, "--out", tmp_path / "s.json")
    assert_user_error(result, value)


@pytest.mark.parametrize("code", ["EPIPE", "EACCES"])
def test_a_closed_output_pipe_stops_quietly_other_os_errors_are_one_line(monkeypatch, code):
    """`bvvtok ... | head` closes our stdout early: exit 1 without a message, as Unix tools do; any
    other OSError the library did not anticipate is still a one-line error, exit 2."""
    import errno
    import os

    import bvvtok.substrate.fonts as fonts

    def fail(*args):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(fonts, "resolve_chain", fail)
    result = invoke("fonts")
    if code == "EPIPE":
        assert result.exit_code == 1 and "error" not in result.output.lower()
        assert not isinstance(result.exception, Exception), result.exception
    else:
        assert_user_error(result, "Permission denied")
