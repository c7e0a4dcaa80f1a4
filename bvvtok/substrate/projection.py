"""PCA of the picture codes and row L2 normalisation (recipe.md section 3, step 7).

scikit-learn's `PCA(n_components=dim)` semantics: centre on the column means,
take the principal axes by decreasing variance, flip each axis so that its
largest-magnitude coefficient is positive (`svd_flip(u_based_decision=False)`),
project. The axes come from the D x D covariance (`eigh`) rather than an SVD of
the V x D matrix: for 0/1 codes X^T X is a matrix of co-occurrence counts,
exact in float32, so the only rounding is in the small eigenproblem (float64).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from bvvtok.errors import BvvtokError

CHUNK_ROWS = 8192  # codes go to float32 this many rows at a time: one small buffer, not a [V, D] copy


def _float_chunks(codes: np.ndarray) -> Iterator[tuple[slice, torch.Tensor]]:
    """(rows, those rows as float32), reusing one buffer: fresh memory costs more than the conversion."""
    n, d = codes.shape
    buffer = torch.empty((min(CHUNK_ROWS, n), d))
    for start in range(0, n, CHUNK_ROWS):
        rows = slice(start, min(start + CHUNK_ROWS, n))
        part = buffer[: rows.stop - start]
        part.copy_(torch.from_numpy(np.ascontiguousarray(codes[rows])))
        yield rows, part


def principal_axes(codes: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], components [dim, D]), float64, of 0/1 codes [V, D] (any dtype)."""
    n, d = codes.shape
    if not 1 <= dim <= d:
        raise BvvtokError(f"--dim {dim} must be between 1 and the number of bits ({d})")
    if n < 2:
        raise BvvtokError("PCA needs at least two tokens")
    counts = np.zeros((d, d))
    for _, part in _float_chunks(codes):
        x = part.numpy()
        counts += x.T @ x  # exact: 0/1 entries, chunks < 2**24 rows (NumPy runs X^T X as a SYRK)
    mean = np.diag(counts) / n  # a 0/1 column's sum of squares is its sum
    covariance = (counts - n * np.outer(mean, mean)) / (n - 1)
    _, vectors = np.linalg.eigh(covariance)  # ascending eigenvalues
    components = vectors[:, ::-1].T[:dim].copy()
    largest = np.argmax(np.abs(components), axis=1)
    components *= np.sign(components[np.arange(dim), largest])[:, None]
    return mean, components


def project(codes: np.ndarray, mean: np.ndarray, components: np.ndarray, out: np.ndarray) -> None:
    """Fill `out` (float32 [V, dim], e.g. a map of the file it goes to) with the unit-length projected rows."""
    w = torch.from_numpy(np.ascontiguousarray(components.T, dtype=np.float32))
    shift = torch.from_numpy((mean @ components.T).astype(np.float32))
    rows_out = torch.from_numpy(out)
    for rows, part in _float_chunks(codes):
        projected = torch.matmul(part, w, out=rows_out[rows])  # torch's GEMM is the faster one here
        projected -= shift
        norms = torch.linalg.vector_norm(projected, dim=1, keepdim=True)
        projected /= torch.where(norms == 0, 1, norms)


def frozen_embeddings(codes: np.ndarray, dim: int) -> np.ndarray:
    """PCA of 0/1 codes [V, D] to `dim` components, every row L2-normalised: float32 [V, dim]."""
    mean, components = principal_axes(codes, dim)
    out = np.empty((len(codes), dim), dtype=np.float32)
    project(codes, mean, components, out)
    return out
