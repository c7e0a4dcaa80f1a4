"""PCA of the picture codes and row L2 normalisation (the published recipe).

scikit-learn's `PCA(n_components=dim)` semantics: centre on the column means,
take the principal axes by decreasing variance, flip each axis so that its
largest-magnitude coefficient is positive (`svd_flip(u_based_decision=False)`),
project. The axes come from the D x D covariance (`eigh`) rather than an SVD of
the V x D matrix: for 0/1 codes X^T X is a matrix of co-occurrence counts,
exact in float32, so the only rounding is in the small eigenproblem (float64).

The projection X W of 0/1 codes needs no multiplications: each group of 4 bits
selects one of 16 precomputed sums of W's rows, so a row's projection is the
sum of D/4 table rows (fewer: an all-zero group adds nothing). torch's
`embedding_bag` does those sums; with a table of 128 columns at a time in
cache it runs about twice as fast as the float32 GEMM on a 2-core AVX2
machine for 1,024-bit codes (as fast for 4,096), and it sums each row in a
fixed order, whatever the thread count.

Rows that only repeat the columns of a narrower 0/1 matrix (`Factor`: a glyph
of a bitmap font drawn at twice its pixel size is 2x2 blocks, so a 32 px code
repeats the pixels of a 17x17 picture) take both steps at the narrow width:
their part of X^T X is a gather of the narrow matrix's own (the same integers,
so the same axes), and their projection sums W's rows per narrow column first.
For 1,024-bit codes and 291 narrow columns that is ~12x less arithmetic for
X^T X and ~3.5x fewer table lookups; the embeddings agree with the dense
path's to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bvvtok.errors import BvvtokError, option

CHUNK_ROWS = 8192  # rows handled at a time: small buffers, not [V, D] copies
TABLE_COLUMNS = 128  # output columns per lookup table: D/4 groups * 16 sums * 128 float32 = 2 MB for D = 1024


@dataclass
class Factor:
    """Rows of the codes that repeat columns of a narrower 0/1 matrix: codes[rows] == small[:, columns]."""

    rows: np.ndarray  # [n] ascending row ids
    small: np.ndarray  # [n, k] 0/1
    columns: np.ndarray  # [D] the column of `small` that each bit of a code repeats


def _dense_rows(n: int, factors: Sequence[Factor]) -> np.ndarray:
    """The rows no factor covers."""
    covered = np.zeros(n, dtype=bool)
    for factor in factors:
        covered[factor.rows] = True
    return np.flatnonzero(~covered)


def _chunks(n: int, rows: np.ndarray | None) -> Iterator[np.ndarray | slice]:
    """Up to CHUNK_ROWS of the given rows at a time (of all n rows, in order, when None)."""
    for start in range(0, n if rows is None else len(rows), CHUNK_ROWS):
        yield slice(start, min(start + CHUNK_ROWS, n)) if rows is None else rows[start : start + CHUNK_ROWS]


def _co_occurrences(codes: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """X^T X (float64 [D, D]) of the 0/1 rows (all when None): exact, counted in float32 chunks of
    < 2**24 rows, converted into one reused buffer (fresh memory costs more than the conversion)."""
    d = codes.shape[1]
    counts = np.zeros((d, d))
    buffer = torch.empty((min(CHUNK_ROWS, len(codes)), d))
    for chunk in _chunks(len(codes), rows):
        block = codes[chunk]
        part = buffer[: len(block)]
        part.copy_(torch.from_numpy(np.ascontiguousarray(block)))
        x = part.numpy()
        counts += x.T @ x  # NumPy runs X^T X as a SYRK
    return counts


def principal_axes(codes: np.ndarray, dim: int, factors: Sequence[Factor] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], components [dim, D]), float64, of 0/1 codes [V, D] (any dtype)."""
    n, d = codes.shape
    if not 1 <= dim <= d:
        raise BvvtokError(f"{option('dim', dim)} must be between 1 and the number of bits ({d})")
    if n < 2:
        raise BvvtokError("PCA needs at least two tokens")
    dense = _dense_rows(n, factors)
    counts = _co_occurrences(codes, dense if len(dense) < n else None)
    for factor in factors:
        counts += _co_occurrences(factor.small)[np.ix_(factor.columns, factor.columns)]
    mean = np.diag(counts) / n  # a 0/1 column's sum of squares is its sum
    covariance = (counts - n * np.outer(mean, mean)) / (n - 1)
    _, vectors = np.linalg.eigh(covariance)  # ascending eigenvalues
    components = vectors[:, ::-1].T[:dim].copy()
    largest = np.argmax(np.abs(components), axis=1)
    components *= np.sign(components[np.arange(dim), largest])[:, None]
    return mean, components


def _lookup_tables(w: np.ndarray) -> list[torch.Tensor]:
    """For each group of 4 input bits and each of its 16 values, the sum of w's rows it selects,
    summed in float64 and rounded once; one float32 table per block of TABLE_COLUMNS output columns.
    (Groups of 8 bits take half the lookups, but building their 16x larger tables costs about what that saves.)"""
    d, dim = w.shape
    padded = np.zeros((-(-d // 4) * 4, dim))  # a last, partial group is completed with zero bits
    padded[:d] = w
    groups = padded.reshape(-1, 4, dim)
    values = (np.arange(16)[:, None] >> np.arange(3, -1, -1)) & 1  # [16, 4]: a group's first bit is its high one
    tables = []
    for c in range(0, dim, TABLE_COLUMNS):  # a block at a time: no float64 [D/4 * 16, dim] in memory
        block = groups[:, :, c : c + TABLE_COLUMNS]
        sums = np.einsum("vk,gkc->gvc", values, block)  # [D/4, 16, columns]
        tables.append(torch.from_numpy(sums.reshape(-1, block.shape[2]).astype(np.float32)))
    return tables


def _lookups(codes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(table row of every non-zero 4-bit group, where each code's rows start): embedding_bag's input."""
    packed = np.packbits(codes != 0, axis=1)
    groups = np.empty((len(packed), 2 * packed.shape[1]), dtype=np.uint8)
    groups[:, 0::2] = packed >> 4
    groups[:, 1::2] = packed & 15
    used = groups != 0
    index = (groups.astype(np.int32) + (np.arange(groups.shape[1], dtype=np.int32) << 4))[used]
    offsets = np.zeros(len(groups), dtype=np.int32)
    np.cumsum(used.sum(axis=1)[:-1], out=offsets[1:])
    return torch.from_numpy(index), torch.from_numpy(offsets)


def _project_rows(
    codes: np.ndarray,
    w: np.ndarray,
    shift: torch.Tensor,
    out: np.ndarray,
    read: np.ndarray | None,
    write: np.ndarray | None,
) -> None:
    """The unit-length rows of codes[read] @ w - shift into out[write]; None: all rows, in order.
    A chunk at a time: no [V, D] copies."""
    tables = _lookup_tables(w)
    in_place = read is None and write is None  # chunk by chunk straight into out
    count = len(codes) if read is None else len(read)
    buffer = None if in_place else torch.empty((min(CHUNK_ROWS, count), w.shape[1]))  # reused: fresh memory is slow
    target = torch.from_numpy(out)
    for i, chunk in enumerate(_chunks(len(codes), read)):
        index, offsets = _lookups(codes[chunk])
        projected = target[chunk] if buffer is None else buffer[: len(offsets)]
        for k, table in enumerate(tables):
            columns = slice(k * TABLE_COLUMNS, k * TABLE_COLUMNS + table.shape[1])
            projected[:, columns] = F.embedding_bag(index, table, offsets, mode="sum")
        projected -= shift
        norms = torch.linalg.vector_norm(projected, dim=1, keepdim=True)
        projected /= torch.where(norms == 0, 1, norms)
        if not in_place:
            rows = chunk if write is None else write[i * CHUNK_ROWS : i * CHUNK_ROWS + len(offsets)]
            # index_copy_ writes in threads, as the in-place path does: a fresh file map faults in on both cores
            target.index_copy_(0, torch.from_numpy(np.asarray(rows)), projected)


def project(
    codes: np.ndarray, mean: np.ndarray, components: np.ndarray, out: np.ndarray, factors: Sequence[Factor] = ()
) -> None:
    """Fill `out` (float32 [V, dim], e.g. a map of the file it goes to) with the unit-length projected rows."""
    w = components.T
    shift = torch.from_numpy((mean @ w).astype(np.float32))
    dense = _dense_rows(len(codes), factors)
    if len(dense) == len(codes):
        _project_rows(codes, w, shift, out, None, None)
    elif len(dense):
        _project_rows(codes, w, shift, out, dense, dense)
    for factor in factors:
        narrow = np.zeros((factor.small.shape[1], w.shape[1]))
        np.add.at(narrow, factor.columns, w)  # a narrow column stands for the code bits that repeat it
        _project_rows(factor.small, narrow, shift, out, None, factor.rows)


def frozen_embeddings(codes: np.ndarray, dim: int, factors: Sequence[Factor] = ()) -> np.ndarray:
    """PCA of 0/1 codes [V, D] to `dim` components, every row L2-normalised: float32 [V, dim]."""
    mean, components = principal_axes(codes, dim, factors)
    out = np.empty((len(codes), dim), dtype=np.float32)
    project(codes, mean, components, out, factors)
    return out
