"""The substrate folder: a tokenizer folder plus its frozen embedding, codes and manifest.

Files added to the tokenizer's own:
- `embeddings.safetensors`: tensor `weight`, float32 [V, dim];
- `normalized_embeddings_weights.pt`: the same tensor as the published repositories saved it
  (a plain tensor), so their loading code works; read it with `torch.load(..., weights_only=True)`;
- `codes.npy`, for methods whose embedding is made from 0/1 codes (glyph, bits): the raw codes,
  `numpy.packbits(bits, axis=1)`, uint8 [V, bits/8];
- `bvvtok.json`: the manifest, with a `substrate` section and the sha256 of every file.

A killed or failed build leaves the folder as it was (see `write_substrate`).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from bvvtok import output as output_rules
from bvvtok.commit import Update, replace_folder
from bvvtok.errors import BvvtokError, option
from bvvtok.files import atomic_file, sha256_file, write_errors
from bvvtok.manifest import describe_kind, manifest_kind, read_manifest, write_manifest
from bvvtok.output import real
from bvvtok.vocab.tokenizer_files import TOKENIZER_FILES

EMBEDDINGS = "embeddings.safetensors"
PUBLISHED_WEIGHTS = "normalized_embeddings_weights.pt"
CODES = "codes.npy"
SUBSTRATE_FILES = (EMBEDDINGS, PUBLISHED_WEIGHTS, CODES)

Fill = Callable[[np.ndarray], None]  # writes the float32 [V, dim] embedding into the array it is given


def check_replace(out: Path, vocab_dir: Path, settings: dict[str, Any], force: bool) -> None:
    """Refuse, without --force, to overwrite a different substrate; and, even with it, a folder bvvtok did not write,
    a folder of another kind, or files in the vocabulary folder bvvtok did not write.

    Re-running the same settings into the same place is allowed; so is adding a
    substrate to the vocabulary folder itself (nothing else in it is touched).
    """
    manifest = read_manifest(out) if out.is_dir() else {}
    old = manifest.get("substrate")
    if real(out) == real(vocab_dir):
        check_in_place(out, manifest)
    if old is not None and old.get("settings") != settings and not force:
        raise BvvtokError(f"{out} already holds a different substrate ({old.get('settings')}); pass {option('force', True)} to replace it")
    if real(out) != real(vocab_dir):
        output_rules.check_replace(out, force or old is not None, "substrate")


def check_in_place(folder: Path, manifest: dict[str, Any]) -> None:
    """Refuse to add a substrate to a folder that is not a vocabulary (a run, an export: they hold a tokenizer too), or
    whose substrate files bvvtok did not write (not in its manifest): those are never replaced, whatever the flags."""
    kind = manifest_kind(manifest) if manifest else None
    if manifest and kind not in ("vocab", "substrate"):
        raise BvvtokError(f"{folder} is {describe_kind(kind)}, not a vocabulary folder; embed writes a substrate into a "
                          f"vocabulary folder: give the vocabulary, or a new folder as {option('out')}")
    listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    theirs = [name for name in SUBSTRATE_FILES
              if ((folder / name).exists() or (folder / name).is_symlink())
              and not (name in listed and (folder / name).is_file() and not (folder / name).is_symlink())]  # fmt: skip
    if theirs:
        raise BvvtokError(f"{folder} holds {', '.join(theirs)}, which bvvtok did not write; embed never replaces them: "
                          f"move them away or write the substrate to a new folder with {option('out')}")


def write_substrate(
    vocab_dir: Path,
    out: Path,
    bits: np.ndarray | None,
    dim: int,
    fill: Fill,
    substrate: dict[str, Any],
    dump_text: tuple[Path, list[str]] | None = None,
    force: bool = False,
) -> tuple[dict[str, Any], np.ndarray]:
    """Write the substrate files and the manifest into `out`: (the manifest, the embedding, read-only).

    `bits`: the codes, or None for a method without codes (no codes.npy).
    `fill` computes the embedding straight into `embeddings.safetensors`, mapped
    into memory: no [V, dim] buffer to allocate and copy out again.
    Into the vocabulary folder itself, the files are written under temporary
    names and moved in together with the new manifest (bvvtok.commit.Update: a
    killed build leaves the old substrate or the new one); nothing else in the
    folder is touched, except the codes of an old substrate when the new one has
    none. Elsewhere, a new folder is assembled from the vocabulary's
    files and swapped in whole. The caller holds `out` (bvvtok.output.claim).
    """
    manifest = read_manifest(vocab_dir)
    manifest.setdefault("bvvtok_version", substrate["bvvtok_version"])
    manifest["substrate"] = {k: v for k, v in substrate.items() if k != "bvvtok_version"}
    manifest.pop("files", None)
    manifest.pop("sizes", None)
    with write_errors(out, unwritable=False):
        if real(out) == real(vocab_dir):
            update = Update(out)
            try:
                embeddings, digests = _write_files(update.new, bits, (substrate["tokens"], dim), fill)
                if bits is None and (out / CODES).exists():
                    update.drop(CODES)
                manifest = update.commit(manifest, digests)
            finally:
                update.discard()  # what a failure left staged; nothing after a commit
        else:
            with replace_folder(out) as tmp:
                for name in TOKENIZER_FILES:  # only these: a substrate folder holds nothing else (verify checks)
                    if (vocab_dir / name).is_file():
                        shutil.copy2(vocab_dir / name, tmp / name)
                embeddings, digests = _write_files(lambda name: tmp / name, bits, (substrate["tokens"], dim), fill)
                manifest = write_manifest(tmp, manifest, digests)
    if dump_text is not None:
        write_codes_text(dump_text[0], dump_text[1], bits, force, inputs=[vocab_dir])
    return manifest, embeddings


def _write_files(
    place: Callable[[str], Path], bits: np.ndarray | None, shape: tuple[int, int], fill: Fill
) -> tuple[np.ndarray, dict[str, str]]:
    """Write the files where `place(name)` says: (the embedding, read-only; the sha256 of the two large files).

    The large files are hashed beside the writing (torch.save releases the GIL),
    not read back afterwards.
    """
    import torch  # here, not above: the method registry reads this module's names, and `info` must not wait for torch

    with ThreadPoolExecutor(2) as hasher:
        path = place(EMBEDDINGS)
        embeddings = _map_safetensors(path, "weight", shape)
        fill(embeddings)
        embeddings_digest = hasher.submit(sha256_file, path)
        with open(place(PUBLISHED_WEIGHTS), "w+b") as f:  # w+: mappable
            weights = _HashingWriter(f, hasher)
            torch.save(torch.from_numpy(embeddings), weights)
        digests = {EMBEDDINGS: embeddings_digest.result(), PUBLISHED_WEIGHTS: weights.hexdigest()}
    if bits is not None:
        with open(place(CODES), "wb") as f:
            np.save(f, np.packbits(bits, axis=1))
    embeddings.flags.writeable = False
    return embeddings, digests


MAPPED_WRITE = 16 << 20  # bytes: larger writes are copied in through a map, in two threads
MAPPED_PIECE = 64 << 20  # bytes mapped at a time: the map's pages count in the process's RSS


class _HashingWriter:
    """A binary file that also feeds what is written to sha256, in a helper thread beside the write.

    A large write (the tensor's data) goes through a shared map of the file,
    half of it copied by a helper thread: the kernel's work of giving the file
    fresh pages is then done on two cores. On the 2-core VM where the bench
    runs, 256 MB takes 0.4-0.55 s instead of 0.8-1.2 s with one write().
    """

    def __init__(self, f: BinaryIO, pool: ThreadPoolExecutor):
        self.f, self.pool, self.sha256 = f, pool, hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        hashed = self.pool.submit(self.sha256.update, view)
        written = self._write_mapped(view) if len(view) >= MAPPED_WRITE else self.f.write(view)
        hashed.result()  # torch's buffer is only valid during this call
        return written

    def _write_mapped(self, view: memoryview) -> int:
        self.f.flush()
        start, fd = self.f.tell(), self.f.fileno()
        # the blocks exist before the copy: a full disk is an OSError here, not a SIGBUS in the copy
        os.posix_fallocate(fd, start, len(view))
        source = np.frombuffer(view, dtype=np.uint8)
        with ThreadPoolExecutor(1) as helper:
            for done in range(0, len(view), MAPPED_PIECE):
                piece = source[done : done + MAPPED_PIECE]
                at = start + done
                base = at - at % mmap.ALLOCATIONGRANULARITY
                with mmap.mmap(fd, at + len(piece) - base, offset=base) as mapped:
                    target = np.frombuffer(mapped, dtype=np.uint8, offset=at - base)
                    half = len(piece) // 2
                    first = helper.submit(np.copyto, target[:half], piece[:half])
                    np.copyto(target[half:], piece[half:])
                    first.result()
                    del target  # the map cannot close while an array still points into it
        self.f.seek(start + len(view))
        return len(view)

    def flush(self) -> None:
        self.f.flush()

    def hexdigest(self) -> str:
        return self.sha256.hexdigest()


def _safetensors_header(name: str, shape: tuple[int, int]) -> bytes:
    """The bytes before the data of a one-tensor float32 file, as safetensors' `save_file` lays it out: the
    header's length (8 bytes, little-endian), the JSON header padded with spaces to a multiple of 8."""
    size = shape[0] * shape[1] * 4
    header = json.dumps({name: {"dtype": "F32", "shape": list(shape), "data_offsets": [0, size]}}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def _map_safetensors(path: Path, name: str, shape: tuple[int, int]) -> np.memmap:
    """A one-tensor float32 file, byte for byte as safetensors' `save_file` lays it out, mapped for writing."""
    header = _safetensors_header(name, shape)
    with open(path, "wb") as f:
        f.write(header)
        # reserve the blocks now: a full disk is then an OSError here, not a SIGBUS in the middle of the projection
        os.posix_fallocate(f.fileno(), 0, len(header) + shape[0] * shape[1] * 4)
    return np.memmap(path, dtype=np.float32, mode="r+", offset=len(header), shape=shape)


def embeddings_sha256(weight: np.ndarray) -> str:
    """The sha256 of the `embeddings.safetensors` that holds `weight`: what a substrate's manifest records for it,
    so a copy of the embedding elsewhere (an exported model) can be proven to be the substrate's."""
    h = hashlib.sha256(_safetensors_header("weight", weight.shape))
    h.update(np.ascontiguousarray(weight, dtype="<f4").data)
    return h.hexdigest()


def write_codes_text(path: Path, tokens: list[str], bits: np.ndarray, force: bool = False, inputs: Sequence[Path] = ()) -> None:
    """One line per token: id, token (as a Python literal), the bits as 0/1 characters."""
    digits = (bits + ord("0")).astype(np.uint8)
    with atomic_file(path, force, inputs) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, (token, row) in enumerate(zip(tokens, digits)):
            f.write(f"{i}\t{token!r}\t{row.tobytes().decode('ascii')}\n")
