"""Bad inputs, one line each: every case runs through the CLI and must end in one `error:` line and exit 2.

To add a case, add one `Case(id, argv, fragments[, setup])` line to CASES:
- argv: the command line, split like a shell's; in it `{substrate}` (a 16-bit codebook substrate), `{glyph}` (a glyph
  substrate), `{run}` (a trained run) and `{vocab}` (a 65k vocabulary) are read-only fixture folders, built only
  when a case names them, and `{tmp}` is the case's own empty folder, also the current directory;
- fragments: texts the error line must contain (the problem and the fix);
- setup: a function below that makes the bad input in `{tmp}` (a damaged copy of a fixture, a binary file, or
  `world`: a substrate S, a corpus folder D, runs R, R2 and R3 (R3 with the user's notes.txt), a vocabulary
  W/vocab, a folder F of the user's and stats.txt, for the `--out`/`--force` cases, given as relative paths; or
  `world_and_more`: the same, and the folders of the other kinds bvvtok writes: a vocabulary B it built, a Hugging
  Face export H of R, a mixture M of R and R2, a token folder T).
Every output path goes under `{tmp}`: the test fails if the command leaves anything new or changed there.
(The corruptions that `bvvtok verify` must find are the same kind of table in test_verify.py: CORRUPTIONS.)
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import assert_user_error, invoke, make_world, snapshot, write_char_vocab

UNIFONT = Path("/usr/share/fonts/opentype/unifont/unifont.otf")
FIXTURES = {"substrate": "char_substrate", "glyph": "glyph_substrate", "run": "char_run", "vocab": "tiny_vocab_dir",
            "made": "made_folders"}


class Places(dict):
    """The `{name}` values of a case: `tmp` at once, a fixture folder when a case first names it."""

    def __init__(self, request: pytest.FixtureRequest, tmp: Path) -> None:
        super().__init__(tmp=tmp)
        self.request = request

    def __missing__(self, name: str) -> Path:
        self[name] = self.request.getfixturevalue(FIXTURES[name])
        return self[name]


Setup = Callable[[Path, Places], None]


class Case(NamedTuple):
    id: str
    argv: str
    fragments: tuple[str, ...]
    setup: Setup | None = None


# setups: each makes one bad input in tmp


def binary_config(tmp: Path, places: Places) -> None:
    (tmp / "binary.toml").write_bytes(b"\xff\xfe\x00\x01binary")


def a_corpus(tmp: Path, places: Places) -> None:
    (tmp / "c.txt").write_text("the cat\n", encoding="utf-8")


def config_model_not_a_table(tmp: Path, places: Places) -> None:
    (tmp / "model.toml").write_text("model = 5\n", encoding="utf-8")


def binary_questions(tmp: Path, places: Places) -> None:
    (tmp / "binary.jsonl").write_bytes(b"\xff\xfe\x00\x01binary\n")


def damaged_glyph_copy(tmp: Path, places: Places) -> Path:
    return Path(shutil.copytree(places["glyph"], tmp / "damaged"))


def truncated_embeddings(tmp: Path, places: Places) -> None:
    path = damaged_glyph_copy(tmp, places) / "embeddings.safetensors"
    path.write_bytes(path.read_bytes()[:100])


def object_codes(tmp: Path, places: Places) -> None:
    np.save(damaged_glyph_copy(tmp, places) / "codes.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)


def narrow_codes(tmp: Path, places: Places) -> None:
    folder = damaged_glyph_copy(tmp, places)
    rows = len(np.load(folder / "codes.npy"))
    np.save(folder / "codes.npy", np.zeros((rows, 1), np.uint8))


def corpus(tmp: Path, places: Places) -> None:
    (tmp / "c.txt").write_text("".join(f"the cat saw the dog {i}.\n" for i in range(100)), encoding="utf-8")


def little_text(tmp: Path, places: Places) -> None:
    """one.txt: one character; blank.txt and blank.jsonl: whitespace only (a record of it, in .jsonl)."""
    (tmp / "one.txt").write_text("a", encoding="utf-8")
    (tmp / "blank.txt").write_text(" \n\n \t \n", encoding="utf-8")
    (tmp / "blank.jsonl").write_text(json.dumps({"text": " \n \t"}) + "\n", encoding="utf-8")


def parquet_without_text(tmp: Path, places: Places) -> None:
    pq.write_table(pa.table({"body": ["a"], "id": [1]}), tmp / "a.parquet")


def parquet_of_numbers(tmp: Path, places: Places) -> None:
    pq.write_table(pa.table({"text": [1, 2]}), tmp / "a.parquet")


def cut_parquet(tmp: Path, places: Places) -> None:
    pq.write_table(pa.table({"text": ["some text"] * 100}), tmp / "whole.parquet")
    data = (tmp / "whole.parquet").read_bytes()
    (tmp / "whole.parquet").unlink()
    (tmp / "cut.parquet").write_bytes(data[: len(data) // 2])


def damaged_row_group(tmp: Path, places: Places) -> None:
    """Row group 1's first page header overwritten: row group 0 reads, row group 1 does not."""
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(30)]}), tmp / "a.parquet", row_group_size=10)
    chunk = pq.ParquetFile(tmp / "a.parquet").metadata.row_group(1).column(0)
    data = bytearray((tmp / "a.parquet").read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start : start + 16] = b"\xff" * 16
    (tmp / "a.parquet").write_bytes(bytes(data))


def cut_zst(tmp: Path, places: Places) -> None:
    data = zstandard.ZstdCompressor().compress("".join(f"line {i}\n" for i in range(10_000)).encode())
    (tmp / "a.txt.zst").write_bytes(data[: len(data) // 2])


def world(tmp: Path, places: Places) -> None:
    """The folders the --out/--force cases name (relative to {tmp}, the current directory): conftest.make_world."""
    make_world(tmp, places["substrate"], places["run"])


def world_and_more(tmp: Path, places: Places) -> None:
    """`world`, and B (a vocabulary bvvtok built), H (an export of R), M (a mixture of R and R2), T (tokens of D):
    copies of `made_folders`."""
    world(tmp, places)
    for name in ("B", "H", "M", "T"):
        shutil.copytree(places["made"] / name, tmp / name)


def link_to_a_vocabulary(tmp: Path, places: Places) -> None:
    world_and_more(tmp, places)
    (tmp / "L").symlink_to(tmp / "B", target_is_directory=True)


def users_substrate_files(tmp: Path, places: Places) -> None:
    """W/vocab, the user's tokenizer folder (no manifest), also holds the user's own codes.npy and embedding."""
    world(tmp, places)
    np.save(tmp / "W" / "vocab" / "codes.npy", np.ones((3, 2), np.uint8))
    (tmp / "W" / "vocab" / "embeddings.safetensors").write_bytes(b"my own embedding")


def users_codes_beside_a_vocabulary(tmp: Path, places: Places) -> None:
    """B, a vocabulary bvvtok built, with the user's codes.npy put in it (not in its manifest)."""
    world_and_more(tmp, places)
    np.save(tmp / "B" / "codes.npy", np.ones((3, 2), np.uint8))


def run_copy(tmp: Path, places: Places) -> Path:
    return Path(shutil.copytree(places["run"], tmp / "run"))


def changed_weights(tmp: Path, places: Places) -> None:
    """The weights changed after the run wrote them (same size: only the sha256 tells)."""
    path = run_copy(tmp, places) / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.unlink()  # a hard link to the checkpoint's: replace it, don't write through it
    path.write_bytes(bytes(data))


def pickled_optimizer(tmp: Path, places: Places) -> None:
    """The checkpoint's optimizer.pt replaced by a pickle of a Python object (not tensors): never unpickled."""
    import fractions
    import pickle

    (run_copy(tmp, places) / "checkpoint" / "optimizer.pt").write_bytes(pickle.dumps(fractions.Fraction(1, 3)))


def missing_loss_png(tmp: Path, places: Places) -> None:
    (run_copy(tmp, places) / "loss.png").unlink()


def manifest_without_glyph_size(tmp: Path, places: Places) -> None:
    path = damaged_glyph_copy(tmp, places) / "bvvtok.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest["substrate"]["glyph_size"]
    path.write_text(json.dumps(manifest), encoding="utf-8")


NOT_FOUND = ("nonexistent not found; check the path",)
SEED_RANGE = ("seed 18446744073709551616 is out of range; give a seed from 0 to",)  # 2**64: past torch's range
# resume {tmp}/run, a copy of {run}, with the settings it was trained with (conftest.char_run)
RESUME = ("train --substrate {substrate} --corpus {run}/../c.jsonl --out {tmp}/run --resume --d-model 32 --n-layer 2 "
          "--n-head 4 --context 32 --steps 30 --batch-size 8 --lr 1e-2 --warmup 3 --eval-every 30")
# the corpus ({tmp}) is never read: these errors come first
TRAIN = "train --substrate {substrate} --corpus {tmp} --out {tmp}/out"
# a run that ends in a second, for the cases where a command that failed to refuse would train
TINY = " --steps 1 --d-model 32 --n-layer 1 --n-head 4 --context 16"

CASES = [
    # tracebacks (issue 17, item 6)
    Case("train-config-binary", TRAIN + " --config {tmp}/binary.toml",
         ("binary.toml is not UTF-8 (byte 0)", "convert it to UTF-8"), binary_config),
    Case("show-truncated-embeddings", "show {tmp}/damaged a -o {tmp}/x.png",
         ("embeddings.safetensors", "the substrate is damaged", "bvvtok verify"), truncated_embeddings),
    Case("show-object-codes", "show {tmp}/damaged a -o {tmp}/x.png",
         ("codes.npy (Object arrays cannot be loaded", "the substrate is damaged"), object_codes),
    Case("grow-too-many-layers", "grow {run} --add-layers 1000000000 --out {tmp}/grown",
         ("--add-layers 1000000000 needs about", "GiB is available; add fewer layers")),
    # misleading messages and silently accepted values (issue 17, item 8)
    Case("embed-workers-negative", "embed {vocab} --workers -1 --out {tmp}/out",
         ("--workers must be at least 1 (got -1)",)),
    Case("embed-workers-zero", "embed {vocab} --workers 0 --out {tmp}/out", ("--workers must be at least 1 (got 0)",)),
    Case("show-no-token", "show {glyph} -o {tmp}/x.png", ("name at least one TOKEN to show: a token's text or #ID",)),
    Case("show-jpg", "show {glyph} a -o {tmp}/x.jpg", ("x.jpg is not a .png path",)),
    Case("ngrams-workers-zero", "ngrams --input en={tmp}/c.txt --workers 0 --out {tmp}/s.json",
         ("--workers must be at least 1 (got 0); give 1 to count in this process",), a_corpus),
    Case("ngrams-workers-negative", "ngrams --input en={tmp}/c.txt --workers -2 --out {tmp}/s.json",
         ("--workers must be at least 1 (got -2)",), a_corpus),
    Case("build-vocab-workers-zero", "build-vocab --corpus en={tmp}/c.txt --workers 0 --out {tmp}/v",
         ("--workers must be at least 1 (got 0)",), a_corpus),
    Case("eval-perplexity-missing", "eval {run} --perplexity {tmp}/nonexistent", NOT_FOUND),
    Case("eval-multiple-choice-missing", "eval {run} --multiple-choice {tmp}/nonexistent", NOT_FOUND),
    Case("eval-translation-missing", "eval {run} --translation {tmp}/nonexistent", NOT_FOUND),
    Case("eval-held-out-missing", "eval {run} --held-out {tmp}/nonexistent", ("--held-out", *NOT_FOUND)),
    Case("bench-tokenizer-text-missing", "bench-tokenizer {vocab} --text en={tmp}/nonexistent", NOT_FOUND),
    # found beside them
    Case("train-config-folder", TRAIN + " --config {tmp}", ("is a folder; give a file",)),
    Case("train-config-model-not-a-table", TRAIN + " --config {tmp}/model.toml",
         ("model must be a table ([model])",), config_model_not_a_table),
    Case("train-corpus-missing", "train --substrate {substrate} --corpus {tmp}/nonexistent --out {tmp}/out", NOT_FOUND),
    Case("train-seed-too-large", TRAIN + " --seed 18446744073709551616", SEED_RANGE),
    Case("train-source-weight-zero", "train --substrate {substrate} --corpus en={tmp}@0 --out {tmp}/out",
         ("the weight '0' must be a positive number",)),
    Case("train-source-weight-text", "train --substrate {substrate} --corpus en={tmp}@most --out {tmp}/out",
         ("the weight 'most' must be a positive number, e.g. @0.7",)),
    Case("train-source-named-twice", "train --substrate {substrate} --corpus en={tmp}@1 --corpus en={tmp}@2 --out {tmp}/out",
         ("names the source en twice",)),
    Case("train-source-without-weight", "train --substrate {substrate} --corpus en={tmp}@1 --corpus zh={tmp} --out {tmp}/out",
         ("zh has no weight while en has one", "give every source a weight")),
    Case("train-steps-and-tokens", TRAIN + " --steps 10 --tokens 1e6", ("give --steps or --tokens, not both",)),
    Case("prepare-val-fraction-zero", "prepare --substrate {substrate} --corpus {tmp}/c.txt --out {tmp}/out --val-fraction 0",
         ("--val-fraction 0 holds out no text", "give a share above 0, e.g. --val-fraction 0.01"), corpus),
    Case("prepare-named-source", "prepare --substrate {substrate} --corpus en={tmp} --out {tmp}/out",
         ("prepare tokenizes one corpus", "--corpus en=tokens-en@WEIGHT")),
    Case("grow-seed-too-large", "grow {run} --add-layers 1 --seed 18446744073709551616 --out {tmp}/grown", SEED_RANGE),
    Case("grow-run-missing", "grow {tmp}/nonexistent --add-layers 1 --out {tmp}/grown", NOT_FOUND),
    Case("eval-seed-too-large", "eval {run} --multiple-choice {tmp}/q.jsonl --seed 18446744073709551616", SEED_RANGE),
    Case("eval-perplexity-empty-folder", "eval {run} --perplexity {tmp}", ("holds no corpus files", "give a corpus file or a folder of them")),
    Case("eval-multiple-choice-binary", "eval {run} --multiple-choice {tmp}/binary.jsonl",
         ("binary.jsonl is not UTF-8 (byte 0)",), binary_questions),
    Case("show-substrate-missing", "show {tmp}/nonexistent a -o {tmp}/x.png", NOT_FOUND),
    Case("show-narrow-codes", "show {tmp}/damaged a -o {tmp}/x.png",
         ("codes.npy (uint8 [", "expected uint8"), narrow_codes),
    Case("show-manifest-without-glyph-size", "show {tmp}/damaged a -o {tmp}/x.png",
         ("gives no glyph_size of 32 or 64",), manifest_without_glyph_size),
    Case("embed-font-folder", "embed {vocab} --font {tmp} --out {tmp}/out", ("is a folder; pass a font file",)),
    # readers check what they load against the manifest (issue 17, item 4)
    Case("generate-changed-weights", "generate {tmp}/run --prompt a --max-new-tokens 3",
         ("is not what its bvvtok.json says (model.safetensors changed)",), changed_weights),
    Case("train-resume-pickled-optimizer", RESUME,
         ("optimizer.pt holds something other than tensors", "bvvtok will not unpickle it", "restore the checkpoint",
          "--force"), pickled_optimizer),
    Case("export-missing-file", "export {tmp}/run --out {tmp}/hf", ("loss.png is missing",), missing_loss_png),
    # --out is never an input, a folder holding one, or inside one (issue 17, item 1)
    Case("prepare-into-its-corpus", "prepare --substrate S --corpus D --out D --force", ("holds the input",), world),
    Case("train-over-its-substrate", "train --substrate S --corpus D/c.txt --out S --force", ("is the input",), world),
    Case("train-over-its-corpus-folder", "train --substrate S --corpus D/c.txt --out D --force", ("holds the input",), world),
    Case("train-over-its-init-from", "train --substrate S --corpus D/c.txt --init-from R --out R --force", ("is the input",), world),
    Case("train-into-its-substrate", "train --substrate S --corpus D/c.txt --out S/run", ("is inside the input",), world),
    Case("embed-over-the-vocab-parent", "embed W/vocab --out W --force", ("holds the input",), world),
    Case("embed-dump-into-the-vocab", "embed W/vocab --method bits --bits 16 --dump-text W/vocab/codes.txt",
         ("inside the input",), world),
    Case("export-over-its-run", "export R --out R --force", ("is the input",), world),
    Case("export-into-its-run", "export R --out R/hf", ("is inside the input",), world),
    Case("grow-over-its-run", "grow R --add-layers 1 --out R --force", ("is the input",), world),
    Case("combine-over-a-member", "combine R R2 --out R2 --force", ("is the input",), world),
    Case("ngrams-over-its-corpus", "ngrams --input en=D/c.txt --out D/c.txt --force", ("is the input",), world),
    Case("compare-into-a-run", "compare R R2 -o R/curves.png", ("is inside the input",), world),
    Case("eval-over-its-text", "eval R --perplexity D/c.txt --results D/c.txt --force", ("is the input",), world),
    Case("bench-tokenizer-over-its-text", "bench-tokenizer S --text en=D/c.txt --csv D/c.txt --force", ("is the input",), world),
    Case("plot-substrate-into-its-substrate", "plot-substrate S -o S/map.png", ("is inside the input",), world),
    Case("import-into-its-export", "import R --out R/run", ("is inside the input",), world),
    # --force replaces only a folder bvvtok wrote, whole (issue 17, item 2)
    Case("build-vocab-over-a-user-folder", "build-vocab --ngrams stats.txt --out F --force",
         ("F holds marker.txt, sub", "did not write"), world),
    Case("embed-over-a-user-folder", "embed W/vocab --method bits --bits 16 --out F --force", ("did not write",), world),
    Case("train-over-a-user-folder", "train --substrate S --corpus D/c.txt --out F --force", ("did not write",), world),
    Case("prepare-over-a-user-folder", "prepare --substrate S --corpus D --out F --force", ("did not write",), world),
    Case("export-over-a-user-folder", "export R --out F --force", ("did not write",), world),
    Case("combine-over-a-user-folder", "combine R R2 --out F --force", ("did not write",), world),
    Case("grow-over-a-user-folder", "grow R --add-layers 1 --out F --force", ("did not write",), world),
    Case("a-run-with-a-user-file", "train --substrate S --corpus D/c.txt --out R3 --force", ("R3 holds notes.txt",), world),
    # embed into the vocabulary folder itself never replaces the user's files there, whatever the flags
    Case("embed-in-place-over-the-users-files", "embed W/vocab --method bits --bits 16",
         ("W/vocab holds embeddings.safetensors, codes.npy, which bvvtok did not write", "move them away", "--out"), users_substrate_files),
    Case("embed-in-place-over-the-users-files-force", "embed W/vocab --method bits --bits 16 --force",
         ("W/vocab holds embeddings.safetensors, codes.npy, which bvvtok did not write", "move them away", "--out"), users_substrate_files),
    Case("embed-in-place-beside-a-vocabulary", "embed B --method bits --bits 16 --force", ("B holds codes.npy, which bvvtok did not write",),
         users_codes_beside_a_vocabulary),
    Case("embed-in-place-into-a-run", "embed R --method bits --bits 16", ("R is a run folder, not a vocabulary folder", "--out"), world),
    # --force replaces only a folder of the kind the command writes
    Case("train-force-over-a-vocabulary", "train --substrate S --corpus D/c.txt --out B --force" + TINY,
         ("B is a vocabulary folder; --force replaces only a run or mixture folder: choose another --out",), world_and_more),
    Case("train-force-through-a-link-to-a-vocabulary", "train --substrate S --corpus D/c.txt --out L --force" + TINY,
         ("B is a vocabulary folder; --force replaces only a run or mixture folder",), link_to_a_vocabulary),
    Case("export-force-over-a-run", "export R --out R2 --force",
         ("--out R2 is a run folder; --force replaces only a Hugging Face export folder",), world),
    Case("build-vocab-force-over-a-run", "build-vocab --ngrams stats.txt --out R --force",
         ("--out R is a run folder; --force replaces only a vocabulary or substrate folder",), world),
    Case("prepare-force-over-an-export", "prepare --substrate S --corpus D --out H --force",
         ("--out H is a Hugging Face export folder; --force replaces only a token folder",), world_and_more),
    Case("prepare-force-over-a-run", "prepare --substrate S --corpus D --out R --force", ("--out R is a run folder",), world),
    Case("grow-force-over-a-vocabulary", "grow R --add-layers 1 --out B --force", ("--out B is a vocabulary folder",), world_and_more),
    Case("embed-force-over-another-vocabulary", "embed W/vocab --method bits --bits 16 --out B --force",
         ("B is a vocabulary folder; --force replaces only a substrate folder",), world_and_more),
    Case("combine-force-over-an-export", "combine R R2 --out H --force", ("--out H is a Hugging Face export folder",), world_and_more),
    Case("import-force-over-tokens", "import H --out T --force", ("--out T is a token folder; --force replaces only a run or mixture",),
         world_and_more),
    Case("train-over-an-export", "train --substrate S --corpus D/c.txt --out H" + TINY,
         ("H is a Hugging Face export folder; --force replaces only a run or mixture folder",), world_and_more),
    Case("train-over-a-mixture", "train --substrate S --corpus D/c.txt --out M" + TINY, ("is a bvvtok folder; pass --force",), world_and_more),
    Case("train-resume-an-export", "train --substrate S --corpus D/c.txt --out H --resume" + TINY, ("is not a run folder",), world_and_more),
    # a file output never lands inside a bvvtok folder (its manifest would not list it, or it would replace the manifest)
    Case("eval-results-over-a-manifest", "eval R --perplexity D/c.txt -o R2/bvvtok.json --force",
         ("R2/bvvtok.json is inside R2, a run folder of bvvtok's; write it outside that folder",), world),
    Case("compare-into-another-run", "compare R -o R2/loss.png --force", ("R2/loss.png is inside R2, a run folder",), world),
    Case("show-into-a-run", "show {glyph} a -o R2/x.png", ("is inside R2, a run folder",), world),
    Case("plot-substrate-into-a-run", "plot-substrate S -o R2/map.png", ("is inside R2, a run folder",), world),
    Case("ngrams-into-a-substrate", "ngrams --input en=D/c.txt --out S/stats.json", ("is inside S, a substrate folder",), world),
    Case("bench-tokenizer-csv-into-a-run", "bench-tokenizer S --text en=D/c.txt --csv R2/b.csv", ("is inside R2, a run folder",), world),
    Case("bench-tokenizer-heatmap-under-a-run", "bench-tokenizer S --text en=D/c.txt --heatmap R2/checkpoint/h.png",
         ("R2/checkpoint/h.png is inside R2, a run folder",), world),
    Case("embed-dump-text-into-a-run", "embed W/vocab --method bits --bits 16 --out E --dump-text R2/codes.txt",
         ("is inside R2, a run folder",), world),
    Case("eval-results-into-tokens", "eval R --perplexity D/c.txt --results T/r.csv", ("is inside T, a token folder",), world_and_more),
    # places never replaced (issue 17, item 4)
    # (build-vocab without --ngrams reads no file: no input rule comes first; it is refused before it builds)
    Case("out-the-current-directory", "build-vocab --out . --force", ("the current directory",), world),
    Case("out-above-the-current-directory", "build-vocab --out .. --force", ("above the current directory",), world),
    Case("out-a-file-system-root", "build-vocab --out / --force", ("root of a file system",)),
    Case("bench-tokenizer-language-twice", "bench-tokenizer {vocab} --text en={tmp}/a.txt --text en={tmp}/b.txt",
         ("--text names en twice",)),
    # too little text: one character, or whitespace only
    Case("prepare-one-character", "prepare --substrate {substrate} --corpus {tmp}/one.txt --out {tmp}/out",
         ("one.txt holds too little text (1 character other than whitespace): nothing to train or validate on", "give a corpus with more text"),
         little_text),
    Case("prepare-whitespace-only", "prepare --substrate {substrate} --corpus {tmp}/blank.txt --out {tmp}/out",
         ("blank.txt holds too little text (0 characters other than whitespace)",), little_text),
    Case("ngrams-one-character", "ngrams --input en={tmp}/one.txt --out {tmp}/stats.json",
         ("the corpus for en (", "one.txt) holds too little text: no n-gram of orders 2, 3, 4, 5", "give a corpus with more text"),
         little_text),
    Case("eval-perplexity-one-character", "eval {run} --perplexity {tmp}/one.txt",
         ("one.txt holds too little text (1 character other than whitespace): nothing to score", "give a corpus with more text"),
         little_text),
    Case("eval-perplexity-whitespace-only", "eval {run} --perplexity {tmp}/blank.jsonl",
         ("blank.jsonl holds too little text (0 characters other than whitespace): nothing to score",), little_text),
    Case("bench-tokenizer-one-character", "bench-tokenizer {vocab} --text en={tmp}/one.txt",
         ("one.txt holds too little text (1 character other than whitespace): nothing to measure", "give a corpus with more text"),
         little_text),
    Case("bench-tokenizer-whitespace-only", "bench-tokenizer {vocab} --text en={tmp}/blank.jsonl",
         ("blank.jsonl holds too little text (0 characters other than whitespace): nothing to measure",), little_text),
    # corpus formats: a file that cannot be read as told, named, with the fix
    Case("prepare-parquet-without-the-column", "prepare --substrate {substrate} --corpus {tmp}/a.parquet --out {tmp}/out",
         ("a.parquet has no column 'text' (it has body, id); name the text's column with --text-column",), parquet_without_text),
    Case("ngrams-parquet-column-of-numbers", "ngrams --input en={tmp}/a.parquet --out {tmp}/stats.json --text-column text",
         ("a.parquet: column 'text' holds int64, not strings; name a text column with --text-column",), parquet_of_numbers),
    Case("train-cut-parquet", "train --substrate {substrate} --corpus {tmp}/cut.parquet --out {tmp}/out",
         ("cut.parquet is not a readable Parquet file", "write it again"), cut_parquet),
    Case("prepare-damaged-row-group", "prepare --substrate {substrate} --corpus {tmp}/a.parquet --out {tmp}/out",
         ("a.parquet: row group 1 of 3 cannot be read", "the file is damaged or cut short"), damaged_row_group),
    Case("ngrams-cut-zst", "ngrams --input en={tmp}/a.txt.zst --out {tmp}/stats.json",
         ("a.txt.zst (stopped at byte", "the file is damaged or cut short"), cut_zst),
    Case("bench-tokenizer-hf-unreachable", "bench-tokenizer {vocab} --text en=hf:nobody/nothing",
         ("hf:nobody/nothing: the dataset could not be reached", "local files work offline")),
]  # fmt: skip


@pytest.fixture(scope="session")
def made_folders(char_substrate, char_run, tmp_path_factory) -> Path:
    """B, H, M and T of `world_and_more`, made once by the commands that make them (read-only: copied into each case)."""
    folder = tmp_path_factory.mktemp("made")
    make_world(folder / "world", char_substrate, char_run)
    w = folder / "world"
    for argv in (["build-vocab", "--ngrams", w / "stats.txt", "--out", folder / "B"], ["export", w / "R", "--out", folder / "H"],
                 ["combine", w / "R", w / "R2", "--out", folder / "M"],
                 ["prepare", "--substrate", w / "S", "--corpus", w / "D", "--out", folder / "T"]):  # fmt: skip
        result = invoke(*argv)
        assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="session")
def glyph_substrate(tmp_path_factory) -> Path:
    """A glyph substrate of the ~120-token character vocabulary (read-only: copy it before damaging it)."""
    if not UNIFONT.is_file():
        pytest.skip(f"GNU Unifont not found at {UNIFONT}")
    from bvvtok.substrate.embed import embed_glyph

    folder = write_char_vocab(tmp_path_factory.mktemp("glyph") / "substrate")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("BVVTOK_FONT", raising=False)
        mp.setenv("BVVTOK_CACHE_DIR", str(tmp_path_factory.mktemp("glyph-cache")))
        embed_glyph(folder, dim=16)
    return folder


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    places = Places(request, tmp_path)
    if case.setup:
        case.setup(tmp_path, places)
    argv = [arg.format_map(places) for arg in shlex.split(case.argv)]
    before = snapshot(tmp_path, times=True)
    assert_user_error(invoke(*argv), *case.fragments)
    assert snapshot(tmp_path, times=True) == before, "the command wrote into {tmp}"


def test_a_refused_pickle_prints_no_warning(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch warns about the pickle's protocol before it refuses it: the one line of ours is all the user sees."""
    import warnings

    monkeypatch.chdir(tmp_path)
    places = Places(request, tmp_path)
    pickled_optimizer(tmp_path, places)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke(*(arg.format_map(places) for arg in shlex.split(RESUME)))
    assert_user_error(result, "optimizer.pt holds something other than tensors")
    assert [str(w.message) for w in caught] == []


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


# Refused before the work, not after it (issue 20, item 7): each case names an output that must be refused and the
# function that does the command's work; that function is replaced by one that fails the test if it is ever called.
# The places are `world`'s (S, D, R, R2, F, stats.txt); x.png and r.csv exist there too.
class Early(NamedTuple):
    id: str
    argv: str
    fragments: tuple[str, ...]
    work: str  # module:attribute


EARLY = [
    Early("build-vocab-over-a-bvvtok-folder", "build-vocab --ngrams stats.txt --out S", ("is a bvvtok folder",), "bvvtok.vocab.build:build_vocab"),
    Early("ngrams-over-a-file", "ngrams --input en=D/c.txt --out stats.txt", ("exists; pass --force",), "bvvtok.vocab.corpus_stats:count_corpus"),
    Early("bench-tokenizer-csv-over-a-file", "bench-tokenizer S --text en=D/c.txt --csv stats.txt", ("exists; pass --force",),
          "bvvtok.vocab.tokenizer_bench:bench_tokenizers"),
    Early("embed-over-a-user-folder", "embed W/vocab --method bits --bits 16 --out F", ("did not write",), "bvvtok.substrate.methods.bits:Bits.build"),
    Early("embed-dump-text-over-a-file", "embed W/vocab --method bits --bits 16 --out E --dump-text stats.txt", ("exists; pass --force",),
          "bvvtok.substrate.methods.bits:Bits.build"),
    Early("show-over-a-png", "show S a --out x.png", ("exists; pass --force",), "bvvtok.substrate.show:substrate_rows"),
    Early("plot-substrate-over-a-png", "plot-substrate S --out x.png", ("exists; pass --force",), "bvvtok.substrate.plot_map:map_substrate"),
    Early("prepare-over-a-user-folder", "prepare --substrate S --corpus D --out F", ("did not write",), "bvvtok.lm.data:_describe"),
    Early("train-over-a-run", "train --substrate S --corpus D/c.txt --out R", ("is a run folder",), "bvvtok.lm.train:load_substrate"),
    Early("export-over-a-run", "export R --out R2", ("--out R2 is a run folder; --force replaces only a Hugging Face export folder",),
          "bvvtok.lm.export:load_model"),
    Early("import-over-a-bvvtok-folder", "import R --out R2", ("is a bvvtok folder",), "bvvtok.lm.import_hf:model_config"),
    Early("combine-over-a-substrate", "combine R R2 --out S", ("--out S is a substrate folder; --force replaces only a run or mixture",),
          "bvvtok.lm.combine:_mixture"),
    Early("grow-over-a-substrate", "grow R --add-layers 1 --out S", ("--out S is a substrate folder; --force replaces only a run or mixture",),
          "bvvtok.lm.grow:_grown"),
    Early("eval-results-over-a-file", "eval R --perplexity D/c.txt --results r.csv", ("exists; pass --force",),
          "bvvtok.lm.evals.report:evaluate_runs"),
    Early("eval-results-not-csv-or-json", "eval R --perplexity D/c.txt --results r.txt", ("as .csv or .json",),
          "bvvtok.lm.evals.report:evaluate_runs"),
    Early("compare-over-a-png", "compare R R2 --out x.png", ("exists; pass --force",), "bvvtok.lm.plots:read_metrics"),
]  # fmt: skip


@pytest.mark.parametrize("case", EARLY, ids=[c.id for c in EARLY])
def test_an_output_is_refused_before_the_work(case: Early, request: pytest.FixtureRequest, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import importlib

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BVVTOK_CACHE_DIR", str(tmp_path.parent / f"{tmp_path.name}-cache"))
    world(tmp_path, Places(request, tmp_path))
    for name in ("x.png", "r.csv"):
        (tmp_path / name).write_bytes(b"mine")
    module, _, attribute = case.work.partition(":")
    owner, _, name = attribute.rpartition(".")
    target = importlib.import_module(module)
    target = getattr(target, owner) if owner else target

    def work(*args, **kwargs):
        raise AssertionError(f"{case.work} ran before the output was refused")

    monkeypatch.setattr(target, name, work)
    before = snapshot(tmp_path, times=True)
    assert_user_error(invoke(*shlex.split(case.argv)), *case.fragments)
    assert snapshot(tmp_path, times=True) == before, "the command wrote into {tmp}"


def test_early_ids_are_unique() -> None:
    ids = [c.id for c in EARLY]
    assert len(ids) == len(set(ids))
