"""`bvvtok verify`: prove a substrate folder is what its manifest says.

Every check returns a result instead of raising: a damaged folder (missing,
truncated or foreign files) gives failed checks, never a traceback. Tensors are
read with safetensors and `torch.load(weights_only=True)`, never through pickle.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from bvvtok.commit import JOURNAL, recover_for_reading
from bvvtok.difference import first_difference, listing, plural
from bvvtok.errors import BvvtokError
from bvvtok.files import MANIFEST_NAME, TEMP, sha256_file
from bvvtok.manifest import MANIFEST_VERSION, read_manifest
from bvvtok.substrate.embed import DEFAULT_D_MODEL, embed_bits, embed_glyph
from bvvtok.substrate.folder import CODES, EMBEDDINGS, PUBLISHED_WEIGHTS, SUBSTRATE_FILES
from bvvtok.substrate.projection import frozen_embeddings
from bvvtok.vocab.compare import PROBE, probe_difference, tokenizer_file_differences
from bvvtok.vocab.layout import (
    FILLER_SPECIALS,
    MONOGRAM_RANGES,
    NAMED_SPECIALS,
    SPECIALS_START,
    UNUSED,
    get_preset,
    placed_ngrams,
)
from bvvtok.vocab.tokenizer_files import TOKENIZER_FILES, tokenizer_for_ids, write_tokenizer_files

NORM_TOLERANCE = 1e-4
COSINE_FLOOR = 0.9999
KNOWN_FILES = (*TOKENIZER_FILES, *SUBSTRATE_FILES)  # besides the manifest, all a substrate folder holds
# The fields of the substrate section that `settings` repeats (check_replace compares settings alone).
SETTINGS_FIELDS = {
    "glyph": ("method", "recipe", "glyph_size", "dim"),  # and fonts: the sha256 of each entry of `fonts`
    "bits": ("method", "bits", "seed", "float", "dim"),
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


class _Folder:
    """What the checks share, loaded once; a part that cannot be loaded is None (and its check fails)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self.manifest: dict[str, Any] = {}
        self.substrate: dict[str, Any] = {}
        self.vocab: dict[str, int] | None = None
        self.tokenizer: Tokenizer | None = None  # set once tokenizer.json passed its check
        self.weight: np.ndarray | None = None


def _ids(ids: np.ndarray | list[int]) -> str:
    return listing(int(i) for i in ids)


def check_manifest(f: _Folder) -> str:
    f.manifest = read_manifest(f.path)
    if not f.manifest:
        raise ValueError(f"no {MANIFEST_NAME}: not a bvvtok folder")
    version = f.manifest.get("manifest_version", 1)
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise ValueError(f"manifest version {version!r} is from a newer bvvtok (this one reads {MANIFEST_VERSION}); upgrade bvvtok")
    f.substrate = f.manifest.get("substrate") or {}
    if not f.substrate:
        raise ValueError("the manifest describes no substrate (run bvvtok embed)")
    recorded = {"glyph": ("recipe", "fonts"), "bits": ("seed", "generator")}.get(f.substrate.get("method"), ())
    missing = [k for k in ("method", "n_embed", "tokens", *recorded) if k not in f.substrate]
    if missing:
        raise ValueError(f"the manifest lacks {', '.join(missing)}")
    return f"{f.substrate['method']} substrate, {f.substrate['tokens']:,} tokens, n_embed {f.substrate['n_embed']}"


def check_settings(f: _Folder) -> str:
    """`settings` (what embed compares before replacing a substrate) must say what the section records."""
    method = f.substrate["method"]
    if method not in SETTINGS_FIELDS:
        raise ValueError(f"unknown method {method!r}; rebuild the substrate with bvvtok embed")
    settings = f.substrate.get("settings")
    if not isinstance(settings, dict):
        raise ValueError("the manifest records no settings; rebuild the substrate with bvvtok embed")
    recorded = {k: f.substrate.get(k) for k in SETTINGS_FIELDS[method]}
    if method == "glyph":
        recorded["fonts"] = [font.get("sha256") for font in f.substrate["fonts"]]
    stated = {k: settings.get(k) for k in recorded}
    difference = first_difference(stated, recorded, "settings", "the substrate section records")
    if difference:
        raise ValueError(f"{difference}; rebuild the substrate with bvvtok embed")
    return f"settings agree with the recorded {', '.join(recorded)}"


def check_files(f: _Folder) -> str:
    files = f.manifest.get("files") or {}
    if not files:
        raise ValueError("the manifest lists no files")
    missing = [name for name in files if not (f.path / name).is_file()]
    changed = [name for name, digest in files.items() if name not in missing and sha256_file(f.path / name) != digest]
    if missing or changed:
        raise ValueError("; ".join(part for part in (f"missing: {', '.join(missing)}" * bool(missing), f"changed: {', '.join(changed)}" * bool(changed)) if part))
    return f"{len(files)} files match their sha256"


def check_contents(f: _Folder) -> str:
    """Every entry is the manifest or a substrate file the manifest lists: nothing unaccounted for.

    A folder that is not a bvvtok vocabulary (a Hugging Face tokenizer folder given to `embed` as it is) may
    hold other files of its own: they pass when the manifest lists them (they were there when embed ran).
    """
    listed = f.manifest.get("files") or {}
    foreign_folder = not f.manifest.get("vocab")
    unknown, unlisted, leftovers, kept = [], [], [], []
    for entry in sorted(f.path.iterdir()):
        if entry.name == MANIFEST_NAME:
            continue
        if entry.name == JOURNAL or TEMP.fullmatch(entry.name):
            leftovers.append(entry.name)
        elif foreign_folder and entry.is_file() and entry.name in listed and entry.name not in KNOWN_FILES:
            kept.append(entry.name)
        elif entry.is_dir() or entry.name not in KNOWN_FILES:
            unknown.append(entry.name + "/" * entry.is_dir())
        elif entry.name not in listed:
            unlisted.append(entry.name)
    unknown += [name for name in listed if name not in KNOWN_FILES and not (f.path / name).exists()]
    problems = [f"not part of a substrate folder: {listing(unknown)} (move them out of the folder)"] * bool(unknown)
    problems += [f"not in the manifest: {listing(unlisted)} (rebuild the substrate with bvvtok embed)"] * bool(unlisted)
    if problems:
        raise ValueError("; ".join(problems))
    notes = [f"{plural(len(kept), 'other file')} of the tokenizer folder, listed: {listing(kept)}"] * bool(kept)
    left = plural(len(leftovers), "hidden temporary", "hidden temporaries")
    notes += [f"{left} of an interrupted bvvtok command, removed by the next one that writes here"] * bool(leftovers)
    return f"the manifest and the {len(listed)} files it lists, nothing else" + "".join(f"; {n}" for n in notes)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"tokenizer.json lists {key!r} twice")
        seen[key] = value
    return seen


def check_tokenizer(f: _Folder) -> str:
    path = f.path / "tokenizer.json"
    config = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
    tokenizer = Tokenizer.from_file(str(path))
    f.vocab = tokenizer.get_vocab(with_added_tokens=True)
    ids = np.array(sorted(f.vocab.values()))
    size = len(ids)
    if not np.array_equal(ids, np.arange(size)):
        gaps = np.setdiff1d(np.arange(ids.max() + 1), ids)
        raise ValueError(f"ids are not exactly 0..V-1: missing {_ids(gaps)}")
    if size != f.substrate.get("tokens"):
        raise ValueError(f"{size:,} tokens, the manifest says {f.substrate.get('tokens')}")
    merges = config.get("model", {}).get("merges") or []
    pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in merges]
    broken = [f"{a}+{b}" for a, b in pairs if a not in f.vocab or b not in f.vocab or a + b not in f.vocab]
    if broken:
        raise ValueError(f"merges join non-tokens: {listing(broken)}")
    f.tokenizer = tokenizer
    return f"{size:,} ids 0..{size - 1}, {len(pairs):,} merges between tokens"


def check_layout(f: _Folder) -> str:
    """For vocabularies bvvtok built: the code-space layout of the recipe."""
    info = f.manifest.get("vocab")
    if not info:
        return "not a bvvtok vocabulary: layout rules not applicable"
    preset = get_preset(info["preset"])
    if f.vocab is None:
        raise ValueError("tokenizer.json could not be read (see above)")
    vocab = f.vocab
    if len(vocab) != preset.vocab_size:
        raise ValueError(f"{len(vocab):,} tokens, preset {preset.name} has {preset.vocab_size:,}")
    wrong = [cp for r in MONOGRAM_RANGES for cp in r if vocab.get(chr(cp)) != cp]
    wrong += [SPECIALS_START + i for i, t in enumerate(NAMED_SPECIALS) if vocab.get(t) != SPECIALS_START + i]
    wrong += [cp for cp in FILLER_SPECIALS if vocab.get(f"<special_token_{cp}>") != cp]
    reserved = set(NAMED_SPECIALS) | {f"<special_token_{cp}>" for cp in FILLER_SPECIALS}
    for token, i in vocab.items():
        unused = UNUSED.fullmatch(token)
        if unused and int(token[8:-1]) != i:
            wrong.append(i)
        elif len(token) > 1 and not unused and token not in reserved and i not in preset.slot_ids:
            wrong.append(i)  # an n-gram outside the n-gram slots
    if wrong:
        raise ValueError(f"ids out of place: {_ids(sorted(set(wrong)))}")
    placed = placed_ngrams(preset, vocab)
    keys = [(-len(t), t) for t in placed]
    unordered = [vocab[placed[k]] for k in range(1, len(keys)) if keys[k] < keys[k - 1]]
    if unordered:
        raise ValueError(f"n-grams not in (longest first, code point) order at ids {_ids(unordered)}")
    return (
        f"preset {preset.name}: code points, specials, and {len(placed):,} n-grams in order in their slots "
        f"('A' -> {vocab['A']}, '中' -> {vocab['中']})"
    )


def check_behaviour(f: _Folder) -> str:
    """For vocabularies bvvtok built: the five files are what bvvtok writes for the n-grams of the id table."""
    info = f.manifest.get("vocab")
    if not info:
        return (
            "not a bvvtok vocabulary: its behaviour cannot be derived from its ids; "
            "the sha256 in the manifest covers its files"
        )
    if f.tokenizer is None or f.vocab is None:
        raise ValueError("not checked: tokenizer.json failed its check (see above)")
    reference = tokenizer_for_ids(get_preset(info["preset"]), f.vocab)
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(reference, Path(tmp))
        differences = tokenizer_file_differences(f.path, Path(tmp))
    tokens, probe = probe_difference(f.tokenizer, reference)
    if differences or probe:
        raise ValueError("; ".join([*differences, probe or "the probe text still encodes identically"]))
    return (
        f"rebuilt from the id table: the {len(TOKENIZER_FILES)} files agree; "
        f"probe text ({len(PROBE)} scripts, {tokens:,} tokens) encodes identically"
    )


def check_embeddings(f: _Folder) -> str:
    tensors = load_file(str(f.path / EMBEDDINGS))
    if "weight" not in tensors:
        raise ValueError(f"{EMBEDDINGS} has no tensor 'weight'")
    weight = tensors["weight"]
    expected = (f.substrate["tokens"], f.substrate["n_embed"])
    if weight.dtype != np.float32 or weight.shape != expected:
        raise ValueError(f"{weight.dtype} {list(weight.shape)}, expected float32 {list(expected)}")
    f.weight = weight
    bad = np.flatnonzero(~np.isfinite(weight).all(axis=1))
    if len(bad):
        raise ValueError(f"non-finite values in rows {_ids(bad)}")
    return f"float32 {list(weight.shape)}, all finite"


def check_distinct(f: _Folder) -> str:
    weight = _loaded(f)
    rows = np.ascontiguousarray(weight).view(np.dtype((np.void, weight.shape[1] * 4))).ravel()
    _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    repeated = np.flatnonzero(counts[inverse] > 1)
    if f.substrate["method"] == "glyph":  # identical pictures (homoglyphs, blank glyphs) give identical rows
        return f"{len(repeated):,} rows share their picture with another (expected for glyphs: homoglyphs, blank glyphs)"
    if len(repeated):
        raise ValueError(f"{len(repeated):,} rows collide, ids {_ids(repeated)}")
    return f"all {len(rows):,} rows distinct"


def check_values(f: _Folder) -> str:
    weight = _loaded(f)
    if f.substrate["method"] == "bits" and not f.substrate.get("float"):
        wrong = int(((weight != 0) & (weight != 1)).sum())
        if wrong:
            raise ValueError(f"{wrong:,} entries are not 0 or 1")
        return "strictly 0/1"
    norms = np.sqrt(np.einsum("ij,ij->i", weight.astype(np.float64), weight.astype(np.float64)))
    off = np.flatnonzero(np.abs(norms - 1) > NORM_TOLERANCE)
    if len(off):
        raise ValueError(f"{len(off):,} rows are not unit length, ids {_ids(off)}")
    return f"every row has unit L2 norm (within {NORM_TOLERANCE:g})"


def check_published_copy(f: _Folder) -> str:
    tensor = torch.load(f.path / PUBLISHED_WEIGHTS, weights_only=True, map_location="cpu", mmap=True)  # no second copy in memory
    same = isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and np.array_equal(tensor.numpy(), _loaded(f))
    if not same:
        raise ValueError(f"{PUBLISHED_WEIGHTS} does not hold the same tensor as {EMBEDDINGS}")
    return f"{PUBLISHED_WEIGHTS} equals {EMBEDDINGS}"


def check_codes(f: _Folder) -> str:
    weight = _loaded(f)
    n_bits = f.substrate["bits"]
    packed = np.load(f.path / CODES, allow_pickle=False)
    if packed.dtype != np.uint8 or packed.shape != (weight.shape[0], (n_bits + 7) // 8):
        raise ValueError(f"{CODES} is {packed.dtype} {list(packed.shape)}, expected uint8 [{weight.shape[0]}, {(n_bits + 7) // 8}]")
    bits = np.unpackbits(packed, axis=1)[:, :n_bits]
    if f.substrate["method"] == "bits" and not f.substrate.get("float"):
        differ = np.flatnonzero((bits != weight).any(axis=1))
        if len(differ):
            raise ValueError(f"codes and embedding differ in rows {_ids(differ)}")
        return "the embedding is the codes"
    projected = frozen_embeddings(bits, weight.shape[1])
    cosine = np.einsum("ij,ij->i", projected, weight)
    low = np.flatnonzero(cosine < COSINE_FLOOR)
    if len(low):
        raise ValueError(f"PCA of the codes disagrees with the embedding in rows {_ids(low)} (cosine < {COSINE_FLOOR})")
    return f"PCA of the codes gives the embedding (min cosine {cosine.min():.6f})"


def check_rebuild(f: _Folder) -> str:
    s = f.substrate
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rebuild"
        rebuilt = _rebuild(f.path, s, out)
        differ = [name for name in SUBSTRATE_FILES if sha256_file(out / name) != sha256_file(f.path / name)]
        note = _float_note(load_file(out / EMBEDDINGS)["weight"], _loaded(f)) if differ and CODES not in differ else ""
    section = first_difference(_comparable(s), _comparable(rebuilt), "manifest", "the rebuild gives", {"fonts": _fonts})
    problems = [f"a rebuild from the manifest differs in {', '.join(differ)}{note}"] * bool(differ)
    if problems or section:
        raise ValueError("; ".join(problems + [section] * bool(section)))
    return "rebuilt from the manifest: codes and embeddings identical, byte for byte; its substrate section agrees"


def _rebuild(folder: Path, s: dict[str, Any], out: Path) -> dict[str, Any]:
    """Embed `folder` again into `out` with the recorded settings: the substrate section it writes."""
    if s["method"] == "glyph":
        result = embed_glyph(folder, out, s["recipe"], s["glyph_size"], s["dim"])
    else:
        as_float = s.get("float", False)
        dim = s["dim"] if as_float else None
        result = embed_bits(folder, s["bits"], s["seed"], as_float, dim, s.get("d_model", DEFAULT_D_MODEL), out)
    return result.manifest["substrate"]


def _comparable(section: dict[str, Any]) -> dict[str, Any]:
    """The substrate section less what may differ between machines or is compared elsewhere:
    `renderer` (library versions here: the codes compared byte for byte prove the pixels),
    each font's `file` (its name on this machine: the sha256 identifies the font),
    `settings` (repeats the section's fields: the settings check compares them)."""
    comparable = {k: v for k, v in section.items() if k not in ("renderer", "settings")}
    if "fonts" in section:
        comparable["fonts"] = [{k: v for k, v in font.items() if k != "file"} for font in section["fonts"]]
    return comparable


def _fonts(stored: list[dict[str, Any]], rebuilt: list[dict[str, Any]]) -> str:
    if len(stored) != len(rebuilt):
        return f"the manifest records {plural(len(stored), 'font')}, the rebuild found {len(rebuilt)}"
    i = next(i for i, (a, b) in enumerate(zip(stored, rebuilt)) if a != b)
    name = f" ({stored[i]['name']})" if "name" in stored[i] else ""
    return f"font {i + 1} of the chain{name}: {first_difference(stored[i], rebuilt[i], source='the rebuild found')}"


def _float_note(rebuilt: np.ndarray, stored: np.ndarray) -> str:
    """How far apart two embeddings of the same codes are: rounding (another bvvtok version's
    floating-point path) or more."""
    if rebuilt.shape != stored.shape:
        return f" (codes identical; the embedding is {list(rebuilt.shape)} rebuilt, {list(stored.shape)} stored)"
    a, b = rebuilt.astype(np.float64), stored.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.einsum("ij,ij->i", a, b)[norms > 0] / norms[norms > 0]
    low = f"{cosine.min():.7f}" if len(cosine) else "n/a"
    return (
        f" (codes identical; the embeddings agree to a min row cosine of {low}:"
        " floating-point rounding, e.g. from another bvvtok version, if that is close to 1)"
    )


def _loaded(f: _Folder) -> np.ndarray:
    if f.weight is None:
        raise ValueError(f"{EMBEDDINGS} could not be read (see above)")
    return f.weight


CHECKS: list[tuple[str, Callable[[_Folder], str]]] = [
    ("manifest", check_manifest),
    ("settings", check_settings),
    ("file hashes", check_files),
    ("folder contents", check_contents),
    ("tokenizer", check_tokenizer),
    ("layout", check_layout),
    ("tokenizer behaviour", check_behaviour),
    ("embeddings", check_embeddings),
    ("distinct rows", check_distinct),
    ("values", check_values),
    (".pt copy", check_published_copy),
    ("codes", check_codes),
]


# What a consumer (the trainer) checks before every use: seconds, not the full proof.
QUICK = ("manifest", "file hashes", "tokenizer", "tokenizer behaviour", "embeddings", "values", ".pt copy")


def verify(folder: Path, rebuild: bool = False, quick: bool = False) -> list[Check]:
    """Run the checks (`quick`: only those in QUICK) and return their results; never raises on a damaged folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BvvtokError(f"{folder} is not a folder; pass a substrate folder (bvvtok embed writes one)")
    recover_for_reading(folder)  # a commit that a killed `embed` left half done is finished first
    state = _Folder(folder)
    results = []
    checks = [c for c in CHECKS if c[0] in QUICK] if quick else CHECKS + ([("rebuild", check_rebuild)] if rebuild else [])
    for name, check in checks:
        if results and not results[0].ok:  # everything else reads what the manifest says
            results.append(Check(name, False, "not checked: the manifest is unusable"))
            continue
        try:
            results.append(Check(name, True, check(state)))
        except Exception as e:  # a damaged folder is a failed check, whatever the library raised
            results.append(Check(name, False, str(e) or type(e).__name__))
    return results


def as_json(results: list[Check]) -> str:
    return json.dumps({"ok": all(r.ok for r in results), "checks": [asdict(r) for r in results]}, ensure_ascii=False, indent=2)
