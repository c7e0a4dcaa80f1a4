"""`bvvtok verify`: prove a substrate folder is what its manifest says.

Every check returns a result instead of raising: a damaged folder (missing,
truncated or foreign files) gives failed checks, never a traceback. Tensors are
read with safetensors and `torch.load(weights_only=True)`, never through pickle.
The folder is read once (bvvtok.substrate.view); the checks are functions of what
was read. Three of them follow the substrate's method (`Method.checks`): distinct
rows, values and codes.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file

from bvvtok.commit import JOURNAL, recover_for_reading
from bvvtok.difference import first_difference, listing, plural
from bvvtok.errors import BvvtokError
from bvvtok.files import MANIFEST_NAME, TEMP, load_tensors, sha256_file
from bvvtok.manifest import MANIFEST_VERSION
from bvvtok.substrate.embed import embed
from bvvtok.substrate.folder import CODES, EMBEDDINGS, PUBLISHED_WEIGHTS, SUBSTRATE_FILES
from bvvtok.substrate.methods import METHODS, Checker, Method
from bvvtok.substrate.view import Failed, TokenizerFile, View, ids
from bvvtok.vocab.proof import prove_tokenizer, vocab_preset
from bvvtok.vocab.layout import (
    FILLER_SPECIALS,
    MONOGRAM_RANGES,
    NAMED_SPECIALS,
    SPECIALS_START,
    UNUSED,
    placed_ngrams,
)
from bvvtok.vocab.tokenizer_files import TOKENIZER_FILES

KNOWN_FILES = (*TOKENIZER_FILES, *SUBSTRATE_FILES)  # besides the manifest, all a substrate folder holds


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _known(view: View) -> type[Method] | None:
    """The substrate's method, if bvvtok has it."""
    name = view.substrate.get("method")
    return METHODS.get(name) if isinstance(name, str) else None


def _method(view: View) -> type[Method]:
    method = _known(view)
    if method is None:
        raise ValueError(f"unknown method {view.substrate.get('method')!r}; rebuild the substrate with bvvtok embed")
    return method


def check_manifest(view: View) -> str:
    manifest = view.manifest
    if isinstance(manifest, Failed):
        raise ValueError(manifest.reason)
    if not manifest:
        raise ValueError(f"no {MANIFEST_NAME}: not a bvvtok folder")
    version = manifest.get("manifest_version", 1)
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise ValueError(f"manifest version {version!r} is from a newer bvvtok (this one reads {MANIFEST_VERSION}); upgrade bvvtok")
    s = view.substrate
    if not s:
        raise ValueError("the manifest describes no substrate (run bvvtok embed)")
    method = _known(view)
    missing = [k for k in ("method", "n_embed", "tokens", *(method.required if method else ())) if k not in s]
    if missing:
        raise ValueError(f"the manifest lacks {', '.join(missing)}")
    return f"{s['method']} substrate, {s['tokens']:,} tokens, n_embed {s['n_embed']}"


def check_vocabulary_manifest(view: View) -> str:
    """A vocabulary folder's manifest (no substrate yet): readable, not from a newer bvvtok."""
    manifest = view.manifest
    if isinstance(manifest, Failed):
        raise ValueError(manifest.reason)
    version = manifest.get("manifest_version", 1)
    if not isinstance(version, int) or version > MANIFEST_VERSION:
        raise ValueError(f"manifest version {version!r} is from a newer bvvtok (this one reads {MANIFEST_VERSION}); upgrade bvvtok")
    info = manifest.get("vocab")
    if isinstance(info, dict):
        return f"vocabulary, preset {info.get('preset')}, {info.get('vocab_size', 0):,} ids (no substrate yet)"
    return "a tokenizer folder's manifest, no vocab section (no substrate yet)"


def check_settings(view: View) -> str:
    """`settings` (what embed compares before replacing a substrate) must say what the section records."""
    method = _method(view)
    settings = view.substrate.get("settings")
    if not isinstance(settings, dict):
        raise ValueError("the manifest records no settings; rebuild the substrate with bvvtok embed")
    recorded = method.recorded_settings(view.substrate)
    stated = {k: settings.get(k) for k in recorded}
    difference = first_difference(stated, recorded, "settings", "the substrate section records")
    if difference:
        raise ValueError(f"{difference}; rebuild the substrate with bvvtok embed")
    return f"settings agree with the recorded {', '.join(recorded)}"


def check_files(view: View) -> str:
    files = view.manifest.get("files") or {}
    if not files:
        raise ValueError("the manifest lists no files")
    missing = [name for name in files if not (view.path / name).is_file()]
    changed = [name for name, digest in files.items() if name not in missing and sha256_file(view.path / name) != digest]
    if missing or changed:
        raise ValueError("; ".join(part for part in (f"missing: {', '.join(missing)}" * bool(missing), f"changed: {', '.join(changed)}" * bool(changed)) if part))
    return f"{len(files)} files match their sha256"


def check_contents(view: View) -> str:
    """Every entry is the manifest or a substrate file the manifest lists: nothing unaccounted for.

    A folder that is not a bvvtok vocabulary (a Hugging Face tokenizer folder given to `embed` as it is) may
    hold other files of its own: they pass when the manifest lists them (they were there when embed ran).
    """
    listed = view.manifest.get("files") or {}
    foreign_folder = not view.manifest.get("vocab")
    unknown, unlisted, leftovers, kept = [], [], [], []
    for entry in sorted(view.path.iterdir()):
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
    unknown += [name for name in listed if name not in KNOWN_FILES and not (view.path / name).exists()]
    problems = [f"not part of a substrate folder: {listing(unknown)} (move them out of the folder)"] * bool(unknown)
    problems += [f"not in the manifest: {listing(unlisted)} (rebuild the substrate with bvvtok embed)"] * bool(unlisted)
    if problems:
        raise ValueError("; ".join(problems))
    notes = [f"{plural(len(kept), 'other file')} of the tokenizer folder, listed: {listing(kept)}"] * bool(kept)
    left = plural(len(leftovers), "hidden temporary", "hidden temporaries")
    notes += [f"{left} of an interrupted bvvtok command, removed by the next one that writes here"] * bool(leftovers)
    return f"the manifest and the {len(listed)} files it lists, nothing else" + "".join(f"; {n}" for n in notes)


def _checked_tokenizer(view: View) -> tuple[TokenizerFile, str]:
    """The tokenizer and what its check found; raises what is wrong with it."""
    loaded = view.tokenizer
    if isinstance(loaded, Failed):
        raise ValueError(loaded.reason)
    config, _, vocab = loaded
    numbers = np.array(sorted(vocab.values()))
    size = len(numbers)
    if not np.array_equal(numbers, np.arange(size)):
        gaps = np.setdiff1d(np.arange(numbers.max() + 1), numbers)
        raise ValueError(f"ids are not exactly 0..V-1: missing {ids(gaps)}")
    if view.substrate and size != view.substrate.get("tokens"):
        raise ValueError(f"{size:,} tokens, the manifest says {view.substrate.get('tokens')}")
    merges = config.get("model", {}).get("merges") or []
    pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in merges]
    broken = [f"{a}+{b}" for a, b in pairs if a not in vocab or b not in vocab or a + b not in vocab]
    if broken:
        raise ValueError(f"merges join non-tokens: {listing(broken)}")
    return loaded, f"{size:,} ids 0..{size - 1}, {len(pairs):,} merges between tokens"


def check_tokenizer(view: View) -> str:
    return _checked_tokenizer(view)[1]


def check_layout(view: View) -> str:
    """For vocabularies bvvtok built: the code-space layout of the recipe."""
    if isinstance(view.tokenizer, Failed):
        if not view.manifest.get("vocab"):
            return "not a bvvtok vocabulary: layout rules not applicable"
        raise ValueError("tokenizer.json could not be read (see above)")
    vocab = view.tokenizer.vocab
    preset, _ = vocab_preset(view.manifest, vocab)  # a lost vocab section is the tokenizer behaviour check's to report
    if preset is None:
        return "not a bvvtok vocabulary: layout rules not applicable"
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
        raise ValueError(f"ids out of place: {ids(sorted(set(wrong)))}")
    placed = placed_ngrams(preset, vocab)
    keys = [(-len(t), t) for t in placed]
    unordered = [vocab[placed[k]] for k in range(1, len(keys)) if keys[k] < keys[k - 1]]
    if unordered:
        raise ValueError(f"n-grams not in (longest first, code point) order at ids {ids(unordered)}")
    return (
        f"preset {preset.name}: code points, specials, and {len(placed):,} n-grams in order in their slots "
        f"('A' -> {vocab['A']}, '中' -> {vocab['中']})"
    )


def check_behaviour(view: View) -> str:
    """The tokenizer proof (bvvtok.vocab.proof): for vocabularies bvvtok built, the five files are what bvvtok writes
    for the n-grams of the id table; for others, the sha256 the substrate section recorded when it was embedded."""
    try:
        loaded, _ = _checked_tokenizer(view)
    except Exception:
        raise ValueError("not checked: tokenizer.json failed its check (see above)") from None
    return prove_tokenizer(view.path, view.manifest, tokenizer=loaded.tokenizer, hashes=False)


def check_embeddings(view: View) -> str:
    weight = view.weight
    if isinstance(weight, Failed):
        raise ValueError(weight.reason)
    bad = np.flatnonzero(~np.isfinite(weight).all(axis=1))
    if len(bad):
        raise ValueError(f"non-finite values in rows {ids(bad)}")
    return f"float32 {list(weight.shape)}, all finite"


def check_published_copy(view: View) -> str:
    tensor = load_tensors(view.path / PUBLISHED_WEIGHTS, "the substrate is damaged: embed it again", mmap=True)  # no second copy in memory
    same = isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and np.array_equal(tensor.numpy(), view.need_weight())
    if not same:
        raise ValueError(f"{PUBLISHED_WEIGHTS} does not hold the same tensor as {EMBEDDINGS}")
    return f"{PUBLISHED_WEIGHTS} equals {EMBEDDINGS}"


def _sha256(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def check_rebuild(view: View) -> str:
    s, method = view.substrate, _method(view)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rebuild"
        rebuilt = embed(view.path, method.name, out=out, **method.rebuild_options(s)).manifest["substrate"]
        differ = [name for name in SUBSTRATE_FILES if _sha256(out / name) != _sha256(view.path / name)]
        note = ""
        if differ and CODES not in differ:  # the codes, if any, agree: how far apart the embeddings are
            note = _float_note(load_file(out / EMBEDDINGS)["weight"], view.need_weight(), method.has_codes)
    section = first_difference(method.comparable(s), method.comparable(rebuilt), "manifest", "the rebuild gives", method.described)
    problems = [f"a rebuild from the manifest differs in {', '.join(differ)}{note}"] * bool(differ)
    if problems or section:
        raise ValueError("; ".join(problems + [section] * bool(section)))
    files = "codes and embeddings" if method.has_codes else "embeddings"
    return f"rebuilt from the manifest: {files} identical, byte for byte; its substrate section agrees"


def _float_note(rebuilt: np.ndarray, stored: np.ndarray, has_codes: bool) -> str:
    """How far apart two embeddings of the same codes (or settings) are: rounding (another bvvtok
    version's floating-point path) or more."""
    same = "codes identical; " if has_codes else ""
    if rebuilt.shape != stored.shape:
        return f" ({same}the embedding is {list(rebuilt.shape)} rebuilt, {list(stored.shape)} stored)"
    a, b = rebuilt.astype(np.float64), stored.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.einsum("ij,ij->i", a, b)[norms > 0] / norms[norms > 0]
    low = f"{cosine.min():.7f}" if len(cosine) else "n/a"
    return (
        f" ({same}the embeddings agree to a min row cosine of {low}:"
        " floating-point rounding, e.g. from another bvvtok version, if that is close to 1)"
    )


def _by_method(name: str) -> tuple[str, Checker]:
    """The check `name` as the substrate's method rules it (Method.checks)."""
    return name, lambda view: _method(view).checks[name](view)


CHECKS: list[tuple[str, Checker]] = [
    ("manifest", check_manifest),
    ("settings", check_settings),
    ("file hashes", check_files),
    ("folder contents", check_contents),
    ("tokenizer", check_tokenizer),
    ("layout", check_layout),
    ("tokenizer behaviour", check_behaviour),
    ("embeddings", check_embeddings),
    _by_method("distinct rows"),
    _by_method("values"),
    (".pt copy", check_published_copy),
    _by_method("codes"),
]


# A vocabulary folder before `embed`: the checks that apply to its tokenizer
VOCABULARY_CHECKS: list[tuple[str, Checker]] = [
    ("manifest", check_vocabulary_manifest),
    ("file hashes", check_files),
    ("folder contents", check_contents),
    ("tokenizer", check_tokenizer),
    ("layout", check_layout),
    ("tokenizer behaviour", check_behaviour),
]

# What a consumer (the trainer) checks before every use: seconds, not the full proof.
QUICK = ("manifest", "file hashes", "tokenizer", "tokenizer behaviour", "embeddings", "values", ".pt copy")


def _checks(view: View, rebuild: bool, quick: bool) -> list[tuple[str, Checker]]:
    """CHECKS, then the method's own checks that have no place there, then the rebuild (`quick`: QUICK alone)."""
    method = _known(view)
    named = {name for name, _ in CHECKS}
    own = [(name, check) for name, check in (method.checks.items() if method else ()) if name not in named]
    checks = CHECKS + own + [("rebuild", check_rebuild)] * rebuild
    return [c for c in checks if c[0] in QUICK] if quick else checks


def verify(folder: Path, rebuild: bool = False, quick: bool = False) -> list[Check]:
    """Run the checks that apply to the folder (`quick`: a substrate's QUICK alone) and return their results; never
    raises on a damaged folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BvvtokError(f"{folder} is not a folder; pass a folder bvvtok wrote (a vocabulary, substrate, run or export)")
    recover_for_reading(folder)  # a commit that a killed `embed` left half done is finished first
    kind = "substrate" if quick else folder_kind(folder)  # quick: a consumer that needs a substrate
    if kind in ("run", "export"):  # a model folder: its own checks (bvvtok.lm.proof), the ones every reader runs
        from bvvtok.lm import proof

        view: Any = proof.ModelView(folder, kind)
        checks = proof.CHECKS
    else:
        view = View(folder)
        checks = VOCABULARY_CHECKS if kind == "vocabulary" else _checks(view, rebuild, quick)
    (first, check_first), *others = checks
    results = [_run(first, check_first, view)]
    if not results[0].ok:  # everything else reads what the manifest says
        return results + [Check(name, False, "not checked: the manifest is unusable") for name, _ in others]
    return results + [_run(name, check, view) for name, check in others]


def folder_kind(folder: Path) -> str:
    """What `verify` proves: "run" or "export" (a model folder), "vocabulary" (a tokenizer folder with a manifest and
    no substrate yet), or "substrate" (anything else: a folder that is no substrate fails as one)."""
    from bvvtok.lm.proof import model_folder_kind

    model = model_folder_kind(folder)
    if model is not None:
        return model
    manifest = View(folder).manifest
    if isinstance(manifest, dict) and manifest and not manifest.get("substrate") and (folder / "tokenizer.json").is_file():
        return "vocabulary"
    return "substrate"


def _run(name: str, check: Any, view: Any) -> Check:
    try:
        return Check(name, True, check(view))
    except Exception as e:  # a damaged folder is a failed check, whatever the library raised
        return Check(name, False, str(e) or type(e).__name__)


def as_json(results: list[Check]) -> str:
    return json.dumps({"ok": all(r.ok for r in results), "checks": [asdict(r) for r in results]}, ensure_ascii=False, indent=2)
