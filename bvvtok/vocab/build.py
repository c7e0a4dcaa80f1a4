"""`build-vocab` as a library call: statistics in, a tokenizer folder out.

    build = build_vocab("65k", ngram_files=[Path("ngrams-2-3.txt")])
    save_vocab(build, Path("artifacts/vocab-65k"))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from bvvtok import __version__
from bvvtok.errors import BvvtokError, option
from bvvtok.files import sha256_file
from bvvtok.manifest import write_manifest
from bvvtok.output import atomic_folder
from bvvtok.vocab.languages import BVV241_LANGUAGES
from bvvtok.vocab.layout import Layout, Preset, get_preset, lay_out
from bvvtok.vocab.selection import FAIR_SHARE, select_balanced, select_top_k
from bvvtok.vocab.stats import NgramStats, load_stats, merge_stats
from bvvtok.vocab.tokenizer_files import make_tokenizer, write_tokenizer_files
from bvvtok.vocab.wordfreq_stats import wordfreq_languages, wordfreq_stats

MAX_EXTRA_TOKENS = 65_536


@dataclass
class VocabBuild:
    """A built vocabulary: the layout, the tokenizer, and what went into it."""

    preset: Preset
    layout: Layout
    tokenizer: Tokenizer
    manifest: dict[str, Any] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)  # the files read: an output may never replace them


def read_extra_tokens(path: Path) -> list[str]:
    """Extra whole tokens (the published `intersection.txt`), as the 131k builder read them.

    Lines are stripped; duplicates and strings of length <= 1 are dropped; the
    rest sorted by (length, text) and cut at 65,536.
    """
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        raise BvvtokError(f"extra-tokens file {path} not found; check the {option('extra_tokens')} path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BvvtokError(f"cannot read extra-tokens file {path}: {e}; pass a readable UTF-8 file, one token per line") from None
    tokens = {line.strip() for line in lines}
    return sorted((t for t in tokens if len(t) > 1), key=lambda t: (len(t), t))[:MAX_EXTRA_TOKENS]


def resolve_languages(
    requested: Sequence[str] | None, available: Sequence[str], source: str, default: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """(languages to use, default languages skipped because `source` lacks them).

    Without a request: every available language, or those of `default` that are
    available. A requested language that `source` lacks is an error.
    """
    if requested is not None:
        unknown = [lang for lang in requested if lang not in available]
        if unknown:
            have = ", ".join(sorted(available)) or "none"
            raise BvvtokError(f"unknown language(s) {', '.join(unknown)} for {source} (it has: {have}); fix {option('langs')}")
        return list(requested), []
    if default is None:
        return list(available), []
    return [lang for lang in default if lang in available], [lang for lang in default if lang not in available]


def build_vocab(
    preset: str | Preset,
    ngram_files: Sequence[Path] = (),
    extra_tokens: Path | None = None,
    top_k: int | None = None,
    langs: Sequence[str] | None = None,
    stats: Sequence[NgramStats] = (),
) -> VocabBuild:
    """Build a preset's tokenizer from n-gram statistics: files, statistics in memory (`count_corpus`'s, recorded in
    the manifest by their meta), both, or wordfreq's when neither is given.

    With `top_k`, or when the statistics lack character totals (the published
    files), S follows the recipe's top-k rule; otherwise `select_balanced`.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if top_k is not None and top_k < 1:
        raise BvvtokError(f"{option('top_k')} must be at least 1 (got {top_k})")
    inputs: list[dict[str, Any]] = []
    if ngram_files or stats:
        given = merge_stats([*(load_stats(Path(p)) for p in ngram_files), *stats])
        languages, skipped = resolve_languages(langs, given.codes, "the n-gram statistics")
        inputs += [{"role": "ngrams", "file": Path(p).name, "sha256": sha256_file(Path(p))} for p in ngram_files]
        inputs += [{"role": "ngrams", **s.meta} for s in stats]
        entries = given.entries(languages)  # the statistics decide which orders exist
    else:
        available = sorted(wordfreq_languages())
        languages, skipped = resolve_languages(langs, available, "the offline wordfreq statistics", BVV241_LANGUAGES)
        offline = wordfreq_stats(languages, preset.offline_orders)
        inputs.append({"role": "ngrams", **offline.meta})
        entries = offline.entries(languages, preset.offline_orders)
    if top_k is not None or not all(e.chars for e in entries):
        top_k = preset.top_k if top_k is None else top_k
        selection = {"rule": "top-k", "top_k": top_k}
        ngrams = select_top_k(entries, top_k)
    else:
        selection = {"rule": "balanced", "fair_share": FAIR_SHARE}
        ngrams = select_balanced(entries, preset.slot_count)
    extras: list[str] = []
    if extra_tokens is not None:
        extras = read_extra_tokens(Path(extra_tokens))
        inputs.append({"role": "extra-tokens", "file": Path(extra_tokens).name, "sha256": sha256_file(Path(extra_tokens))})
    layout = lay_out(preset, ngrams | set(extras))
    if not layout.placed:
        raise BvvtokError(
            f"the statistics fill none of the {preset.slot_count} n-gram slots (languages: {', '.join(languages) or 'none'}); "
            f"check {option('langs')} and that the files hold n-grams of 2+ characters"
        )
    manifest = {
        "bvvtok_version": __version__,
        "kind": "vocab",
        "vocab": {
            "preset": preset.name,
            "alias": preset.alias,
            "vocab_size": preset.vocab_size,
            "selection": selection,
            "languages": languages,
            "skipped_languages": skipped,
            "inputs": inputs,
            "ngrams": {
                "candidates": len(ngrams | set(extras)),
                "extra_tokens": len(extras),
                "placed": len(layout.placed),
                "dropped": len(layout.dropped),
                "already_tokens": len(layout.already_tokens),
                "merges": len(layout.merges),
            },
        },
    }
    sources = [Path(p) for p in ngram_files] + ([Path(extra_tokens)] if extra_tokens is not None else [])
    return VocabBuild(preset, layout, make_tokenizer(layout), manifest, sources)


def save_vocab(build: VocabBuild, out: Path, force: bool = False) -> dict[str, Any]:
    """Write the tokenizer folder atomically; returns the manifest written."""
    with atomic_folder(Path(out), force, build.sources, kind="vocab") as tmp:
        write_tokenizer_files(build.tokenizer, tmp)
        manifest = write_manifest(tmp, build.manifest)
    return manifest
