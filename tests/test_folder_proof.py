"""Every model folder proves what it holds: a run (and its export) edited by hand, with the sha256 in its manifest
updated to match as a careful user or a script would, is refused by every reader with one line naming the problem,
and `verify` fails the check that finds it.

Each row of CORRUPTIONS edits a private copy of a trained run (`char_run`) or of its export; `reseal` then
rewrites the file list of the copy's bvvtok.json, so the file hashes pass and only the proof can tell.
"""

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import assert_user_error, invoke
from safetensors.torch import load_file, save_file

from bvvtok.substrate.verify import verify

RUN_CHECKS = ["manifest", "file hashes", "substrate record", "tokenizer", "embedding", "finite weights", "config", "shapes"]


@pytest.fixture(scope="module")
def exported(char_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("proof-export") / "hf"
    result = invoke("export", char_run, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def reseal(folder: Path) -> None:
    """The manifest's sha256 and size of every listed file rewritten, as a careful hand-editor would."""
    manifest = read_json(folder / "bvvtok.json")
    manifest["files"] = {name: sha256(folder / name) for name in manifest["files"]}
    manifest["sizes"] = {name: (folder / name).stat().st_size for name in manifest["files"]}
    write_json(folder / "bvvtok.json", manifest)


def in_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = read_json(folder / name)
        change(data)
        write_json(folder / name, data)

    return edit


def in_weights(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / "model.safetensors"
        state = load_file(str(path))
        metadata = {"format": "pt"} if "gpt_neox.embed_in.weight" in state else None
        change(state)
        path.unlink()  # the run's weights are a hard link to the checkpoint's: a new file, not the same inode
        save_file(state, str(path), metadata=metadata)

    return edit


def swap_ids(a: str, b: str) -> Callable[[Path], None]:
    def change(config: dict) -> None:
        vocab = config["model"]["vocab"]
        vocab[a], vocab[b] = vocab[b], vocab[a]

    return in_json("tokenizer.json", change)


def both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        for one in edits:
            one(folder)

    return edit


LOWERCASE = in_json("tokenizer.json", lambda c: c.update(normalizer={"type": "Lowercase"}))
EDIT_SEED = in_json("substrate.json", lambda m: m["substrate"].update(seed=m["substrate"].get("seed", 0) + 1))


def scaled(state: dict) -> None:
    state["token_embeddings.weight"][:10] *= 1.5


def nan_in(key: str) -> Callable[[dict], None]:
    def change(state: dict) -> None:
        state[key][0, 0] = float("nan")

    return change


def record_substrate_manifest(folder: Path) -> None:
    """The run's record of its substrate's manifest updated too (bvvtok.json's run section)."""
    in_json("bvvtok.json", lambda m: m["run"]["substrate"].update(manifest_sha256=sha256(folder / "substrate.json")))(folder)


def record_tokenizer_in_substrate_json(folder: Path) -> None:
    """substrate.json's records of tokenizer.json (its file list, its substrate section's) updated for the edit."""
    digest = {"tokenizer.json": sha256(folder / "tokenizer.json")}
    in_json("substrate.json", lambda m: (m["files"].update(digest), m["substrate"]["tokenizer_files"].update(digest)))(folder)


# (what is edited, the folder edited: "run" or "export", the edit, the check that must fail, a fragment of its detail).
CORRUPTIONS = [
    ("run: two ids swapped in tokenizer.json", "run", swap_ids("a", "b"), "tokenizer", "tokenizer.json: sha256 is "),
    ("run: a Lowercase normalizer", "run", LOWERCASE, "tokenizer", "tokenizer.json: sha256 is "),
    ("run: two multi-byte ids swapped", "run", swap_ids("你", "好"), "tokenizer", "its file list records"),
    ("run: tokenizer.json and substrate.json's record of it", "run", both(LOWERCASE, record_tokenizer_in_substrate_json),
     "substrate record", "substrate.json has sha256 "),
    ("run: frozen embedding rows x1.5", "run", in_weights(scaled), "embedding", "embedding is not the substrate"),
    ("run: NaN in the output head", "run", in_weights(nan_in("head.weight")), "finite weights", "non-finite values (NaN or inf) in head.weight"),
    ("run: the seed edited in substrate.json", "run", EDIT_SEED, "substrate record", "bvvtok.json's run.substrate records"),
    ("run: the seed edited in substrate.json and the run's record of it", "run", both(EDIT_SEED, record_substrate_manifest),
     "substrate record", "is not the substrate manifest checkpoint/state.json records"),
    ("run: context 32 -> 8 in config.json", "run", in_json("config.json", lambda c: c["model"].update(context=8)),
     "config", "config.json is not the one bvvtok.json's run.config_sha256 records"),
    ("export: two ids swapped in tokenizer.json", "export", swap_ids("a", "b"), "tokenizer", "tokenizer.json: sha256 is "),
    ("export: a Lowercase normalizer", "export", LOWERCASE, "tokenizer", "tokenizer.json: sha256 is "),
    ("export: NaN in embed_out", "export", in_weights(nan_in("embed_out.weight")), "finite weights", "non-finite values"),
]  # fmt: skip


@pytest.fixture
def damaged(char_run, exported, tmp_path):
    def make(which: str, edit: Callable[[Path], None]) -> Path:
        folder = Path(shutil.copytree(char_run if which == "run" else exported, tmp_path / which))
        edit(folder)
        reseal(folder)
        return folder

    return make


@pytest.mark.parametrize("what, which, edit, check, fragment", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_an_edited_folder_fails_its_check(what, which, edit, check, fragment, damaged):
    folder = damaged(which, edit)
    results = verify(folder)
    assert [r.name for r in results] == RUN_CHECKS
    failed = {r.name: r.detail for r in results if not r.ok}
    assert set(failed) == {check}, failed
    assert fragment in failed[check], failed[check]
    result = invoke("verify", folder)
    assert result.exit_code == 1 and "FAIL" in result.stdout, result.output


@pytest.mark.parametrize("what, which, edit, check, fragment", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_readers_refuse_an_edited_folder(what, which, edit, check, fragment, damaged, tmp_path):
    folder = damaged(which, edit)
    if which == "run":
        generated = invoke("generate", folder, "--prompt", "the cat", "--greedy", "--max-new-tokens", "4")
        assert_user_error(generated, f"({check}: ", fragment)
        assert_user_error(invoke("export", folder, "--out", tmp_path / "hf"), f"({check}: ", fragment)
    else:
        assert_user_error(invoke("import", folder, "--out", tmp_path / "run"), fragment)


def test_clean_folders_pass_every_check(char_run, exported):
    for folder in (char_run, exported):
        results = verify(folder)
        assert [r.name for r in results] == RUN_CHECKS
        assert all(r.ok for r in results), [(r.name, r.detail) for r in results if not r.ok]
        assert invoke("verify", folder).exit_code == 0


def test_a_run_records_its_config(char_run):
    run = read_json(char_run / "bvvtok.json")["run"]
    assert run["config_sha256"] == sha256(char_run / "config.json")


def char_run_config():
    from bvvtok.lm.config import resolve_config

    return resolve_config("tiny", None, dict(d_model=32, n_layer=2, n_head=4, context=32),
                          dict(steps=30, batch_size=8, lr=1e-2, warmup=3, eval_every=30))  # fmt: skip


@pytest.mark.parametrize("what, edit, check", [
    ("two ids swapped in tokenizer.json", swap_ids("a", "b"), "tokenizer"),
    ("NaN in the output head", in_weights(nan_in("head.weight")), "finite weights"),
])  # fmt: skip
def test_every_reader_of_a_run_refuses_it(what, edit, check, damaged, char_run, char_substrate, tmp_path, monkeypatch):
    from bvvtok.errors import BvvtokError
    from bvvtok.lm.train import train

    folder = damaged("run", edit)
    refused = f"({check}: "
    assert_user_error(invoke("combine", folder, char_run, "--out", tmp_path / "mix"), refused)
    assert_user_error(invoke("grow", folder, "--add-layers", "1", "--out", tmp_path / "grown"), refused)
    text = tmp_path / "text.txt"
    text.write_text("the cat saw the dog. " * 20, encoding="utf-8")
    assert_user_error(invoke("eval", folder, "--perplexity", text), refused)
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path / "cache"))
    corpus = char_run.parent / "c.jsonl"
    with pytest.raises(BvvtokError, match=rf"\({check}: "):
        train(char_substrate, [corpus], tmp_path / "next", char_run_config(), device="cpu", init_from=folder)
    if check == "tokenizer":  # --resume reads the weights of the checkpoint, the run's tokenizer files all the same
        with pytest.raises(BvvtokError, match=r"\(tokenizer: "):
            train(char_substrate, [corpus], folder, char_run_config(), device="cpu", resume=True)
