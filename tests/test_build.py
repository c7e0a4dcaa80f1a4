import hashlib
import json

import pytest
from tokenizers import Tokenizer

import bvvtok.vocab.build as build_module
from bvvtok.errors import BvvtokError
from bvvtok.vocab.build import MAX_EXTRA_TOKENS, build_vocab, read_extra_tokens, save_vocab
from bvvtok.vocab.stats import LanguageStats, NgramStats, save_stats

FOLDER_FILES = {"tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "bvvtok.json"}


def folder_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --- extra tokens ---


def test_read_extra_tokens(tmp_path):
    path = tmp_path / "extra.txt"
    path.write_text("  ab \nab\nx\n\n   \nabc\r\nb\t\nzz\n中文\nAb\n", encoding="utf-8")
    assert read_extra_tokens(path) == ["Ab", "ab", "zz", "中文", "abc"]


def test_read_extra_tokens_keeps_the_first_65536(tmp_path):
    pairs = [chr(0x4E00 + i // 300) + chr(0x4E00 + i % 300) for i in range(MAX_EXTRA_TOKENS + 10)]
    path = tmp_path / "extra.txt"
    path.write_text("\n".join(["zzz", "abcd"] + pairs[::-1]), encoding="utf-8")
    assert MAX_EXTRA_TOKENS == 65_536
    assert read_extra_tokens(path) == pairs[:MAX_EXTRA_TOKENS]  # shortest first: the long ones fall off


def test_read_extra_tokens_missing_file(tmp_path):
    with pytest.raises(BvvtokError, match="no-extra.txt"):
        read_extra_tokens(tmp_path / "no-extra.txt")


# --- building from statistics ---


def test_build_from_a_tiny_published_file(tiny_stats):
    build = build_vocab("65k", [tiny_stats])
    assert build.layout.placed == ["llo", "the", "he", "in", "ll", "th"]
    info = build.manifest["vocab"]
    assert info["selection"] == {"rule": "top-k", "top_k": 338}
    assert info["languages"] == ["en"]
    assert info["skipped_languages"] == []  # with --ngrams files, the default is every language they hold
    assert info["ngrams"]["placed"] == 6
    assert info["inputs"] == [{"role": "ngrams", "file": "tiny-stats.txt", "sha256": hashlib.sha256(tiny_stats.read_bytes()).hexdigest()}]
    ids = build.tokenizer.encode("hello the test").ids
    assert ids == [build.layout.vocab[t] for t in ["he", "llo", " ", "the", " ", "t", "e", "s", "t"]]
    assert build.tokenizer.get_vocab_size() == 65_536


def test_top_k_and_langs_are_applied(write_stats):
    path = write_stats(
        [
            {"lang": "en", "top_ngrams": {2: [("th", 9), ("he", 8)], 3: [("the", 5)]}},
            {"lang": "de", "top_ngrams": {2: [("ch", 9), ("ei", 8)]}},
        ]
    )
    assert set(build_vocab("65k", [path], top_k=1).layout.placed) == {"th", "the", "ch"}
    only_de = build_vocab("65k", [path], langs=["de"])
    assert set(only_de.layout.placed) == {"ch", "ei"}
    assert only_de.manifest["vocab"]["skipped_languages"] == []


def test_statistics_with_character_totals_use_the_balanced_rule(tmp_path):
    path = tmp_path / "counted.json"
    save_stats(NgramStats([LanguageStats("en", "English", {2: [("th", 9), ("he", 8)], 3: [("the", 5)]}, 100)]), path)
    build = build_vocab("65k", [path])
    assert build.manifest["vocab"]["selection"]["rule"] == "balanced"
    assert set(build.layout.placed) == {"th", "he", "the"}
    assert build_vocab("65k", [path], top_k=1).manifest["vocab"]["selection"] == {"rule": "top-k", "top_k": 1}


def test_extra_tokens_are_added(tiny_stats, tmp_path):
    extra = tmp_path / "intersection.txt"
    extra.write_text("hello\nth\nq\n", encoding="utf-8")
    build = build_vocab("65k", [tiny_stats], extra_tokens=extra)
    assert build.layout.placed[0] == "hello"
    assert build.manifest["vocab"]["ngrams"]["extra_tokens"] == 2
    assert build.manifest["vocab"]["inputs"][-1]["role"] == "extra-tokens"
    assert build.tokenizer.encode("hello").ids == [0xD800]


def test_unknown_language_is_an_error(tiny_stats):
    with pytest.raises(BvvtokError, match="xx"):
        build_vocab("65k", [tiny_stats], langs=["en", "xx"])


def test_offline_language_without_a_word_list_is_an_error():
    with pytest.raises(BvvtokError, match="sa"):
        build_vocab("65k", langs=["en", "sa"])  # wordfreq has no Sanskrit list


def test_top_k_below_one_is_an_error(tiny_stats):
    with pytest.raises(BvvtokError, match="^top_k must be at least 1"):
        build_vocab("65k", [tiny_stats], top_k=0)


@pytest.mark.parametrize(
    "entries",
    [
        [{"lang": "en", "top_ngrams": {1: [("a", 5), ("b", 3)]}}],  # single characters are tokens already
        [{"lang": "en", "top_ngrams": {3: [("<s>", 5)]}}],  # so are the specials
        [{"lang": "en", "top_ngrams": {2: []}}],
        [],
    ],
)
def test_statistics_that_fill_no_slot_are_an_error(write_stats, entries):
    with pytest.raises(BvvtokError, match="slots"):
        build_vocab("65k", [write_stats(entries)])


def test_missing_statistics_file_is_an_error(tmp_path):
    with pytest.raises(BvvtokError, match="missing.txt"):
        build_vocab("65k", [tmp_path / "missing.txt"])


# --- the folder ---


def test_saved_folder(tiny_stats, tmp_path):
    build = build_vocab("65k", [tiny_stats])
    out = tmp_path / "vocab"
    manifest = save_vocab(build, out)
    assert {p.name for p in out.iterdir()} == FOLDER_FILES
    on_disk = json.loads((out / "bvvtok.json").read_text(encoding="utf-8"))
    assert on_disk == manifest
    assert set(on_disk["files"]) == FOLDER_FILES - {"bvvtok.json"}
    for name, digest in on_disk["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert (config["model_type"], config["vocab_size"]) == ("gpt2", 65_536)
    assert (config["bos_token"], config["eos_token"], config["unk_token"], config["pad_token"]) == ("<s>", "</s>", "<unk>", "<pad>")
    specials = json.loads((out / "special_tokens_map.json").read_text(encoding="utf-8"))
    assert specials["unk_token"] == "<unk>"
    assert len(json.loads((out / "vocab.json").read_text(encoding="utf-8"))) == 65_536
    assert (out / "merges.txt").read_text(encoding="utf-8").count("\n") >= len(build.layout.merges)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_saved_tokenizer_loads_and_encodes_the_same(tiny_vocab_dir, tiny_stats):
    build = build_vocab("65k", [tiny_stats])
    loaded = Tokenizer.from_file(str(tiny_vocab_dir / "tokenizer.json"))
    for text in ["hello the test", "A", "中文", "<s>x</s>", "a\U0001F600b"]:
        assert loaded.encode(text).ids == build.tokenizer.encode(text).ids
    assert loaded.encode("a\U0001F600b").ids == [97, 57347, 98]
    assert loaded.token_to_id("<unused_65535>") == 0xFFFF


def test_transformers_loads_the_folder(tiny_vocab_dir):
    transformers = pytest.importorskip("transformers")
    loaded = Tokenizer.from_file(str(tiny_vocab_dir / "tokenizer.json"))
    hf = transformers.AutoTokenizer.from_pretrained(str(tiny_vocab_dir))
    for text in ["hello the test", "中文 A", "a\U0001F600b"]:
        assert hf.encode(text, add_special_tokens=False) == loaded.encode(text).ids
    assert (hf.unk_token_id, hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (57347, 57344, 57345, 57346)
    assert hf.convert_ids_to_tokens(0xD800) == loaded.id_to_token(0xD800)


def test_same_inputs_give_identical_folders(tiny_stats, tmp_path):
    save_vocab(build_vocab("65k", [tiny_stats]), tmp_path / "one")
    save_vocab(build_vocab("65k", [tiny_stats]), tmp_path / "two")
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "two")


def test_save_replaces_only_its_own_folder_and_only_with_force(tiny_stats, tmp_path):
    build = build_vocab("65k", [tiny_stats])
    out = tmp_path / "vocab"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    for force in (False, True):
        with pytest.raises(BvvtokError, match="did not write"):
            save_vocab(build, out, force=force)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    save_vocab(build, out)
    assert {p.name for p in out.iterdir()} == FOLDER_FILES
    with pytest.raises(BvvtokError, match="bvvtok folder.*force=True"):
        save_vocab(build, out)
    save_vocab(build, out, force=True)
    assert {p.name for p in out.iterdir()} == FOLDER_FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-stats.txt", "vocab"]  # no temporaries, no lock left


def test_save_into_an_empty_existing_folder(tiny_stats, tmp_path):
    out = tmp_path / "vocab"
    out.mkdir()
    save_vocab(build_vocab("65k", [tiny_stats]), out)
    assert {p.name for p in out.iterdir()} == FOLDER_FILES


def test_save_refuses_a_file(tiny_stats, tmp_path):
    out = tmp_path / "vocab"
    out.write_text("a file", encoding="utf-8")
    with pytest.raises(BvvtokError, match="not a folder"):
        save_vocab(build_vocab("65k", [tiny_stats]), out, force=True)
    assert out.read_text(encoding="utf-8") == "a file"


@pytest.mark.parametrize("step", ["write_manifest", "write_tokenizer_files"])
def test_an_interrupted_write_leaves_nothing(tiny_stats, tmp_path, monkeypatch, step):
    build = build_vocab("65k", [tiny_stats])

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(build_module, step, fail)
    parent = tmp_path / "artifacts"
    with pytest.raises(RuntimeError, match="interrupted"):
        save_vocab(build, parent / "out")
    assert list(parent.iterdir()) == []


def test_an_interrupted_replace_keeps_the_old_folder(tiny_stats, tmp_path, monkeypatch):
    build = build_vocab("65k", [tiny_stats])
    out = tmp_path / "artifacts" / "out"
    save_vocab(build, out)
    before = folder_bytes(out)

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(build_module, "write_manifest", fail)
    with pytest.raises(RuntimeError):
        save_vocab(build, out, force=True)
    assert folder_bytes(out) == before
    assert [p.name for p in out.parent.iterdir()] == ["out"]
