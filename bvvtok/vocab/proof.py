"""The tokenizer proof: a folder's tokenizer files are the ones a record (a vocabulary's or substrate's manifest)
describes, by their sha256 and, where the id table allows deriving it, by their behaviour.

One function, `prove_tokenizer`, serves every reader: `verify` (a vocabulary, a substrate, a run, an export),
the run-folder loader (`generate`, `eval`, `export`, `combine`, `grow`, `train --init-from/--resume`),
`import` and `encode`. A record proves the tokenizer in up to three ways:

- `files`: the sha256 the record lists for each tokenizer file (a run's `substrate.json`, a vocabulary's own
  manifest); a substrate section may repeat them in `tokenizer_files` (the files it was embedded on), which a
  hand edit that updates `files` leaves behind;
- the behaviour: for a vocabulary bvvtok built, the files are what bvvtok writes for the folder's own id table and
  a probe text encodes identically (`vocab` section; a tokenizer with bvvtok's layout whose record lost its
  `vocab` section is refused: its behaviour must be derived);
- otherwise (a Hugging Face tokenizer `embed` took as it is) only the sha256 can prove it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from bvvtok.files import sha256_file
from bvvtok.vocab.compare import PROBE, probe_difference, tokenizer_file_differences
from bvvtok.vocab.layout import NAMED_SPECIALS, PRESETS, SPECIALS_START, Preset, get_preset
from bvvtok.vocab.tokenizer_files import TOKENIZER_FILES, tokenizer_for_ids, write_tokenizer_files

# What export rewrites (the model's context as model_max_length): a run or export compares the others
REWRITTEN = ("tokenizer_config.json",)
MODEL_FOLDER_FILES = tuple(name for name in TOKENIZER_FILES if name not in REWRITTEN)


def bvvtok_layout(vocab: Mapping[str, int]) -> Preset | None:
    """The preset whose layout an id table has (its size, and the named specials from 0xE000), or None."""
    for preset in PRESETS.values():
        if len(vocab) == preset.vocab_size and all(vocab.get(t) == SPECIALS_START + i for i, t in enumerate(NAMED_SPECIALS)):
            return preset
    return None


def vocab_preset(record: Mapping[str, Any], vocab: Mapping[str, int]) -> tuple[Preset | None, str | None]:
    """(the preset whose rules the tokenizer must follow, the problem with the record): the record's `vocab`
    section; for a record without one, the layout the id table has, which is then a problem to report."""
    info = record.get("vocab")
    if isinstance(info, dict) and "preset" in info:
        return get_preset(info["preset"]), None
    preset = bvvtok_layout(vocab)
    if preset is not None:
        return preset, (f"tokenizer.json has bvvtok's {preset.name} layout but the manifest has no vocab section, so its "
                        "behaviour would go unproven; restore the manifest (build-vocab writes it) or rebuild the folder")  # fmt: skip
    if record.get("kind") == "vocab":
        return None, "the manifest was written by build-vocab but has no vocab section; rebuild the vocabulary with bvvtok build-vocab"
    return None, None


def recorded_tokenizer_files(record: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Where the record lists tokenizer files' sha256: {"its file list": {...}, "its substrate section": {...}}."""
    places = {"its file list": record.get("files"), "its substrate section": (record.get("substrate") or {}).get("tokenizer_files")}
    return {where: {n: d for n, d in listed.items() if n in TOKENIZER_FILES} for where, listed in places.items() if isinstance(listed, dict)}


def hash_differences(folder: Path, recorded: Mapping[str, Mapping[str, str]], names: Iterable[str]) -> list[str]:
    """A line for each of `names` whose sha256 is not the one recorded (or that is missing)."""
    problems, seen = [], set()
    for where, listed in recorded.items():
        for name in names:
            if name not in listed or name in seen:
                continue
            path = folder / name
            if not path.is_file():
                problems.append(f"{name}: missing, the substrate record lists it")
            elif (found := sha256_file(path)) != listed[name]:
                problems.append(f"{name}: sha256 is {found[:12]}…, {where} records {listed[name][:12]}…")
            else:
                continue
            seen.add(name)
    return problems


def behaviour_differences(folder: Path, preset: Preset, tokenizer: Tokenizer, names: Iterable[str]) -> tuple[int, list[str]]:
    """(the probe's length in tokens, the differences of `names` and of the probe text from what bvvtok writes for
    the folder's own id table)."""
    reference = tokenizer_for_ids(preset, tokenizer.get_vocab(with_added_tokens=True))
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(reference, Path(tmp))
        differences = tokenizer_file_differences(folder, Path(tmp), tuple(names))
    tokens, probe = probe_difference(tokenizer, reference)
    if differences or probe:
        differences += [probe or "the probe text still encodes identically"]
    return tokens, differences


def prove_tokenizer(folder: Path, record: Mapping[str, Any], names: Iterable[str] = TOKENIZER_FILES,
                    tokenizer: Tokenizer | None = None, hashes: bool = True) -> str:  # fmt: skip
    """What proves `folder`'s tokenizer files `names` against `record`; raises ValueError naming what does not.

    `hashes`: compare the sha256 in the record's file list too (a folder's own manifest leaves that to its file
    check); `tokenizer`: tokenizer.json, loaded already."""
    names = tuple(names)
    recorded = recorded_tokenizer_files(record)
    if not hashes:
        recorded.pop("its file list", None)
    if tokenizer is None:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    preset, missing = vocab_preset(record, tokenizer.get_vocab(with_added_tokens=True))
    problems, tokens = [missing] * bool(missing), 0
    if preset is not None:
        tokens, differences = behaviour_differences(folder, preset, tokenizer, names)
        problems += differences
    problems += hash_differences(folder, recorded, names)
    if problems:
        raise ValueError("; ".join(problems))
    hashed = sorted({n for listed in recorded.values() for n in listed if n in names})
    said = f"{', '.join(hashed)}: the sha256 the record lists" if hashed else ""
    if preset is not None:
        derived = (f"rebuilt from the id table: the {len(names)} files agree; "
                   f"probe text ({len(PROBE)} scripts, {tokens:,} tokens) encodes identically")  # fmt: skip
        return derived + (f"; {said}" if hashed and hashes else "")
    if said:
        return f"not a bvvtok vocabulary: its behaviour cannot be derived from its ids; {said}"
    return "not a bvvtok vocabulary: its behaviour cannot be derived from its ids, and no sha256 of it is recorded"
