"""Shared fixtures: small hand-made statistics, a tiny vocabulary folder, and the offline default build."""

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# transformers and datasets read these once, when first imported: the custom code of exported folders is copied into
# a throwaway folder, not the user's ~/.cache/huggingface, and so is what datasets caches; nothing is fetched from the hub.
HF_MODULES = tempfile.mkdtemp(prefix="bvvtok-tests-hf-modules-")
os.environ["HF_MODULES_CACHE"] = HF_MODULES
os.environ["HF_DATASETS_CACHE"] = os.path.join(HF_MODULES, "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"


def pytest_sessionfinish(session, exitstatus):
    import shutil

    shutil.rmtree(HF_MODULES, ignore_errors=True)

# No deadline: property tests must not depend on how fast the machine is.
settings.register_profile("bvvtok", deadline=None, max_examples=100)
settings.load_profile("bvvtok")

# A published-format (Python literal) statistics file: no character totals, so the top-k rule applies.
TINY_ENTRIES = [
    {
        "lang": "en",
        "language_name": "English",
        "top_ngrams": {
            2: [("th", 10), ("he", 9), ("ll", 5), ("in", 4)],
            3: [("the", 5), ("llo", 3)],
        },
    }
]


def write_literal(path: Path, entries) -> Path:
    path.write_text(repr(entries), encoding="utf-8")
    return path


@pytest.fixture
def write_stats(tmp_path):
    """Write entries as a published-format statistics file and return its path."""

    def write(entries, name="stats.txt"):
        return write_literal(tmp_path / name, entries)

    return write


@pytest.fixture
def tiny_stats(tmp_path) -> Path:
    return write_literal(tmp_path / "tiny-stats.txt", TINY_ENTRIES)


@pytest.fixture(scope="session")
def tiny_vocab_dir(tmp_path_factory) -> Path:
    """A 65k tokenizer folder built from TINY_ENTRIES (read-only for tests)."""
    from bvvtok.vocab.build import build_vocab, save_vocab

    folder = tmp_path_factory.mktemp("tiny")
    stats = write_literal(folder / "tiny-stats.txt", TINY_ENTRIES)
    out = folder / "vocab"
    save_vocab(build_vocab("65k", [stats]), out)
    return out


@pytest.fixture(scope="session")
def offline_65k():
    """The offline default build (wordfreq statistics): ~6 s, so built once per session."""
    from bvvtok.vocab.build import build_vocab

    return build_vocab("65k")


@pytest.fixture(autouse=True)
def no_plain_progress(monkeypatch):
    """Off a terminal (CliRunner's stderr) a command prints a progress line every PLAIN_PROGRESS_S: never in tests,
    so that no test's stderr depends on how long a command took (test_plain_progress.py sets its own clock)."""
    import importlib
    import math

    monkeypatch.setattr(importlib.import_module("bvvtok.cli.app"), "PLAIN_PROGRESS_S", math.inf)


def snapshot(folder: Path, times: bool = False) -> dict[str, str]:
    """Every entry under `folder`, hidden ones included: files with their sha256 (and, with `times`, their
    modification time: rewritten with the same bytes is changed too), folders and links as such."""
    import hashlib

    found = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_symlink() or path.is_dir():
            found[key] = "link" if path.is_symlink() else "folder"
        else:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest() + (f" {path.stat().st_mtime_ns}" if times else "")
    return found


class Payload:
    """Unpickling this makes a folder: proof that pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def invoke(*args):
    """Run the bvvtok CLI in-process with string arguments."""
    from typer.testing import CliRunner

    from bvvtok.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments):
    """Exit code 2 and one line on stderr starting `error:`, naming the problem; no traceback."""
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception), result.exception  # SystemExit only
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_wordlevel_vocab(folder: Path, words: list[str], added: tuple[str, ...] = ("<|end|>",)) -> Path:
    """A small Hugging Face tokenizer folder (WordLevel, ids in list order, `added` as special tokens)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in added])
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def isolated_substrate_env(tmp_path_factory):
    """No $BVVTOK_FONT from the user, and a private glyph render cache (use with pytestmark)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("BVVTOK_FONT", raising=False)
        mp.setenv("BVVTOK_CACHE_DIR", str(tmp_path_factory.mktemp("glyph-cache")))
        yield


def make_world(folder: Path, substrate: Path, run: Path) -> Path:
    """A throwaway world of inputs and outputs for the --out/--force cases: a substrate S, a corpus folder D, runs R,
    R2 and R3 (R3 holding the user's notes.txt), a vocabulary W/vocab, a folder F of the user's, stats.txt."""
    import shutil

    shutil.copytree(substrate, folder / "S")
    (folder / "D").mkdir()
    (folder / "D" / "c.txt").write_text("".join(f"the cat saw the dog {i}. \n" for i in range(100)), encoding="utf-8")
    for name in ("R", "R2", "R3"):
        shutil.copytree(run, folder / name)
    (folder / "R3" / "notes.txt").write_text("my notes on this run", encoding="utf-8")
    write_char_vocab(folder / "W" / "vocab")
    (folder / "F" / "sub").mkdir(parents=True)
    (folder / "F" / "marker.txt").write_text("mine", encoding="utf-8")
    (folder / "F" / "sub" / "deep.txt").write_text("also mine", encoding="utf-8")
    write_literal(folder / "stats.txt", TINY_ENTRIES)
    return folder


CHAR_SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")
CHAR_TEXT = "".join(chr(c) for c in range(32, 127)) + "\n你好世界中文的是一不了人我在有他这"


def write_char_vocab(folder: Path) -> Path:
    """A small character-level tokenizer folder shaped like bvvtok's (BPE without merges, specials first)."""
    from tokenizers import AddedToken, Tokenizer, decoders
    from tokenizers.models import BPE

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(CHAR_SPECIALS + tuple(CHAR_TEXT))}
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tokenizer.decoder = decoders.Sequence([])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in CHAR_SPECIALS])
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="session")
def char_substrate(tmp_path_factory) -> Path:
    """A ~120-token character vocabulary with a 16-bit id codebook (n_embed 16): small enough to train in tests.

    Read-only for tests: copy it before changing anything in it.
    """
    from bvvtok.substrate.embed import embed_bits

    folder = write_char_vocab(tmp_path_factory.mktemp("char") / "substrate")
    embed_bits(folder, n_bits=16, d_model=32)
    return folder


@pytest.fixture(scope="session")
def char_run(char_substrate, tmp_path_factory) -> Path:
    """A run folder: a small model trained for 30 steps on `char_substrate` (read-only for tests)."""
    import json

    from bvvtok.lm.config import resolve_config
    from bvvtok.lm.train import train

    folder = tmp_path_factory.mktemp("char-run")
    corpus = folder / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"the cat saw the dog {i}. "}) + "\n" for i in range(300)), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BVVTOK_CACHE_DIR", str(folder / "cache"))
        config = resolve_config("tiny", None, dict(d_model=32, n_layer=2, n_head=4, context=32),
                                dict(steps=30, batch_size=8, lr=1e-2, warmup=3, eval_every=30))  # fmt: skip
        train(char_substrate, [corpus], folder / "run", config, device="cpu")
    return folder / "run"


def write_corpus_formats(folder: Path, texts: list[str]) -> dict[str, Path]:
    """The same documents in every corpus format, each under `folder`: a folder of one-document .txt files, .jsonl,
    .jsonl.zst, .txt.zst (one line each: texts without a newline), Parquet of several row groups, a `datasets`
    save_to_disk folder, and a folder of Parquet for hf:."""
    import json

    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    datasets.disable_progress_bars()
    folder.mkdir(parents=True, exist_ok=True)
    txt = folder / "txt"
    txt.mkdir()
    for i, text in enumerate(texts):
        (txt / f"doc-{i:04d}.txt").write_text(text, encoding="utf-8")
    jsonl = "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts)).encode()
    (folder / "a.jsonl").write_bytes(jsonl)
    (folder / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl))
    (folder / "hf").mkdir()
    table = pa.table({"id": list(range(len(texts))), "text": texts})
    for path in (folder / "a.parquet", folder / "hf" / "train.parquet"):
        pq.write_table(table, path, row_group_size=max(1, len(texts) // 3))
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(folder / "saved"))
    return {"txt": txt, "jsonl": folder / "a.jsonl", "jsonl.zst": folder / "a.jsonl.zst", "parquet": folder / "a.parquet",
            "saved": folder / "saved", "hf": Path(f"hf:{folder / 'hf'}")}
