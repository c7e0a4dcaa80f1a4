"""The projection (the published recipe): scikit-learn PCA semantics, then unit rows."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

from bvvtok.errors import BvvtokError
from bvvtok.substrate.projection import Factor, frozen_embeddings, principal_axes


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """NumPy's and SciPy's OpenBLAS each spin their own threads: on a small machine they starve each other."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def sklearn_embeddings(codes, dim):
    rows = PCA(n_components=dim, svd_solver="full").fit_transform(codes.astype(np.float32))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def row_cosines(a, b):
    return np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64)) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    )


@pytest.fixture(scope="module")
def codes():
    """Random 0/1 codes [3000, 256] with column densities spread out (distinct variances) and some constant columns."""
    rng = np.random.default_rng(0)
    density = rng.uniform(0.02, 0.6, size=256)
    bits = (rng.random((3000, 256)) < density).astype(np.uint8)
    bits[:, [0, 17, 100]] = 0  # always white
    bits[:, [5, 200]] = 1  # always black
    return bits


@pytest.mark.parametrize("dim", [256, 64, 8])
def test_matches_sklearn_pca(codes, dim):
    ours = frozen_embeddings(codes, dim)
    theirs = sklearn_embeddings(codes, dim)
    assert ours.shape == (3000, dim) and ours.dtype == np.float32
    cosines = row_cosines(ours, theirs)
    assert cosines.min() >= 0.9999, cosines.min()


def test_codes_whose_width_is_not_a_whole_number_of_bytes():
    """The lookup tables take 4 bits at a time: 10 bits end with a partial group, completed with zeros."""
    rng = np.random.default_rng(1)
    codes = (rng.random((500, 10)) < rng.uniform(0.1, 0.9, size=10)).astype(np.uint8)
    codes[:7] = 0  # all-zero codes take no table rows at all
    assert row_cosines(frozen_embeddings(codes, 10), sklearn_embeddings(codes, 10)).min() >= 0.9999


def test_same_bytes_whatever_the_thread_count(codes):
    """Each row is summed in one fixed order, so a build on 1 core equals a build on many."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = frozen_embeddings(codes, 256)
        torch.set_num_threads(4)
        four = frozen_embeddings(codes, 256)
    finally:
        torch.set_num_threads(threads)
    assert one.tobytes() == four.tobytes()


def test_matches_sklearn_components_and_signs(codes):
    """Axes in order of decreasing variance, each signed as sklearn's svd_flip(u_based_decision=False) signs it."""
    mean, components = principal_axes(codes.astype(np.float32), 16)
    pca = PCA(n_components=16, svd_solver="full").fit(codes.astype(np.float64))
    np.testing.assert_allclose(mean, pca.mean_, atol=1e-12)
    np.testing.assert_allclose(components, pca.components_, atol=1e-6)


def test_rows_have_unit_norm(codes):
    out = frozen_embeddings(codes, 128)
    np.testing.assert_allclose(np.linalg.norm(out.astype(np.float64), axis=1), 1.0, atol=1e-5)


def test_deterministic(codes):
    assert frozen_embeddings(codes, 256).tobytes() == frozen_embeddings(codes.copy(), 256).tobytes()


def test_full_dim_is_a_rotation_of_the_centred_codes(codes):
    """dim = D (the published setting): row norms before normalisation are the centred rows' norms."""
    x = codes.astype(np.float64)
    mean, components = principal_axes(codes.astype(np.float32), 256)
    np.testing.assert_allclose(components @ components.T, np.eye(256), atol=1e-9)
    centred = x - mean
    np.testing.assert_allclose(np.linalg.norm(centred @ components.T, axis=1), np.linalg.norm(centred, axis=1), rtol=1e-9)


def test_rows_equal_to_the_mean_give_zeros_not_nan():
    """Identical codes (e.g. blank glyphs only) centre to zero rows: they stay zero instead of dividing by 0."""
    codes = np.zeros((3, 16), dtype=np.uint8)
    codes[:, 3] = 1
    out = frozen_embeddings(codes, 4)
    assert out.shape == (3, 4)
    assert np.isfinite(out).all()
    assert not out.any()


@pytest.mark.parametrize("dim", [0, -1, 257])
def test_dim_out_of_range(codes, dim):
    with pytest.raises(BvvtokError, match=f"^dim={dim} must be between 1"):
        frozen_embeddings(codes[:10], dim)


def test_needs_two_tokens(codes):
    with pytest.raises(BvvtokError, match="two tokens"):
        frozen_embeddings(codes[:1], 4)


@pytest.fixture(scope="module")
def factored_codes():
    """Codes [3000, 256] whose rows 1000-2499 repeat the columns of a [1500, 70] matrix (several bits per column)."""
    rng = np.random.default_rng(2)
    small = (rng.random((1500, 70)) < rng.uniform(0.05, 0.6, size=70)).astype(np.uint8)
    columns = rng.integers(0, 70, size=256)
    codes = (rng.random((3000, 256)) < rng.uniform(0.05, 0.6, size=256)).astype(np.uint8)
    rows = np.arange(1000, 2500)
    codes[rows] = small[:, columns]
    return codes, [Factor(rows, small, columns)]


def test_factored_axes_equal_the_dense_ones_exactly(factored_codes):
    """X^T X of the factored rows is a gather of the narrow matrix's own: the same integers, the same axes."""
    codes, factors = factored_codes
    dense, narrow = principal_axes(codes, 64), principal_axes(codes, 64, factors)
    assert np.array_equal(dense[0], narrow[0]) and np.array_equal(dense[1], narrow[1])


def test_factored_projection_agrees_with_the_dense_one(factored_codes):
    codes, factors = factored_codes
    dense, narrow = frozen_embeddings(codes, 256), frozen_embeddings(codes, 256, factors)
    assert np.abs(dense - narrow).max() < 1e-5
    assert row_cosines(dense, narrow).min() >= 0.99999
    assert narrow.tobytes() == frozen_embeddings(codes.copy(), 256, factors).tobytes()


def test_all_rows_factored(factored_codes):
    """No dense rows left: every row comes from a factor."""
    codes, (factor,) = factored_codes
    rows = factor.rows - 1000
    only = codes[1000:2500]
    out = frozen_embeddings(only, 32, [Factor(rows, factor.small, factor.columns)])
    assert row_cosines(out, frozen_embeddings(only, 32)).min() >= 0.99999
