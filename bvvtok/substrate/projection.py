"""PCA of the picture codes and row L2 normalisation (recipe.md section 3, step 7).

scikit-learn's `PCA(n_components=dim)` semantics: centre on the column means,
take the principal axes by decreasing variance, flip each axis so that its
largest-magnitude coefficient is positive (`svd_flip(u_based_decision=False)`),
project. The axes come from the D x D covariance (`eigh`) rather than an SVD of
the V x D matrix: for 0/1 codes X^T X is a matrix of co-occurrence counts,
exact in float32, so the only rounding is in the small eigenproblem (float64).
"""

from __future__ import annotations

import numpy as np
import torch

from bvvtok.errors import BvvtokError


def principal_axes(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], components [dim, D]), float64, of 0/1 codes given as float32 [V, D]."""
    n, d = x.shape
    if not 1 <= dim <= d:
        raise BvvtokError(f"--dim {dim} must be between 1 and the number of bits ({d})")
    if n < 2:
        raise BvvtokError("PCA needs at least two tokens")
    counts = (x.T @ x).astype(np.float64)  # exact for 0/1 entries and V < 2**24
    mean = x.sum(axis=0, dtype=np.float64) / n
    covariance = (counts - n * np.outer(mean, mean)) / (n - 1)
    _, vectors = np.linalg.eigh(covariance)  # ascending eigenvalues
    components = vectors[:, ::-1].T[:dim].copy()
    largest = np.argmax(np.abs(components), axis=1)
    components *= np.sign(components[np.arange(dim), largest])[:, None]
    return mean, components


def frozen_embeddings(codes: np.ndarray, dim: int) -> np.ndarray:
    """PCA of 0/1 codes [V, D] to `dim` components, every row L2-normalised: float32 [V, dim]."""
    x = codes.astype(np.float32)
    mean, components = principal_axes(x, dim)
    w = torch.from_numpy(np.ascontiguousarray(components.T, dtype=np.float32))
    rows = torch.from_numpy(x) @ w  # torch's GEMM is the faster one here
    del x
    rows -= torch.from_numpy((mean @ components.T).astype(np.float32))
    out = rows.numpy()
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    out /= np.where(norms == 0, 1, norms)[:, None]
    return out
