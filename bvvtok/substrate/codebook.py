"""Binary codebooks, the "BIT" and "FLOAT" ablations (the published recipe).

- 16-bit: row i is i in binary, most significant bit first: unique by construction.
- N-bit random: rows drawn from NumPy's PCG64 seeded generator; rows that repeat
  an earlier row are drawn again (in id order, from the same generator) until
  all rows differ, so a seed gives the same codebook on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bvvtok.errors import BvvtokError, option

GENERATOR = "numpy.random.Generator(PCG64(seed))"
EXACT_HAMMING_LIMIT = 4096  # rows up to which the minimum distance is computed over all pairs
HAMMING_SAMPLE = 2_000_000  # random pairs otherwise, in chunks
HAMMING_CHUNK = 200_000


@dataclass
class Codebook:
    bits: np.ndarray  # uint8 0/1 [V, N]
    redraws: int
    min_hamming: int
    min_hamming_exact: bool


def id_codes_of(numbers: np.ndarray, n_bits: int) -> np.ndarray:
    """Each number in binary, most significant bit first."""
    shifts = np.arange(n_bits - 1, -1, -1, dtype=np.uint64)[None, :]
    return ((numbers.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)


def id_codes(vocab_size: int, n_bits: int) -> np.ndarray:
    """Row i = i in binary, most significant bit first."""
    return id_codes_of(np.arange(vocab_size), n_bits)


def _repeats(bits: np.ndarray) -> np.ndarray:
    """Ids of rows equal to an earlier row."""
    packed = np.ascontiguousarray(np.packbits(bits, axis=1))
    rows = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first = np.unique(rows, return_index=True)
    repeated = np.ones(len(rows), dtype=bool)
    repeated[first] = False
    return np.flatnonzero(repeated)


def random_codes(vocab_size: int, n_bits: int, seed: int) -> tuple[np.ndarray, int]:
    """Unique random 0/1 rows and how many rows had to be drawn again.

    When the codes would fill more than a quarter of the 2^N possible rows,
    redrawing collisions could take very long; the rows are then distinct
    numbers drawn without replacement, written MSB first (no redraws).
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    if n_bits <= 32 and vocab_size * 4 > 2**n_bits:
        return id_codes_of(rng.choice(2**n_bits, vocab_size, replace=False), n_bits), 0
    bits = rng.integers(0, 2, size=(vocab_size, n_bits), dtype=np.uint8)
    redraws = 0
    while len(repeats := _repeats(bits)):
        bits[repeats] = rng.integers(0, 2, size=(len(repeats), n_bits), dtype=np.uint8)
        redraws += len(repeats)
    return bits, redraws


def min_hamming(bits: np.ndarray, seed: int = 0) -> tuple[int, bool]:
    """(minimum Hamming distance between rows, whether exact): all pairs for small V, a random sample otherwise."""
    v = len(bits)
    if v < 2:
        return 0, True
    packed = np.packbits(bits, axis=1)

    def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.bitwise_count(packed[a] ^ packed[b]).sum(axis=1, dtype=np.int64)

    if v <= EXACT_HAMMING_LIMIT:
        return min(int(distances(np.full(v - 1 - i, i), np.arange(i + 1, v)).min()) for i in range(v - 1)), True
    rng = np.random.Generator(np.random.PCG64(seed))
    best = bits.shape[1]
    for _ in range(HAMMING_SAMPLE // HAMMING_CHUNK):
        a = rng.integers(0, v, HAMMING_CHUNK)
        b = (a + rng.integers(1, v, HAMMING_CHUNK)) % v  # never a row with itself
        best = min(best, int(distances(a, b).min()))
    return best, False


def build_codebook(vocab_size: int, n_bits: int, seed: int) -> Codebook:
    if n_bits < 1:
        raise BvvtokError(f"{option('bits')} must be positive (got {n_bits})")
    if seed < 0:
        raise BvvtokError(f"{option('seed')} must be a non-negative integer (got {seed})")
    needed = max(1, math.ceil(math.log2(vocab_size))) if vocab_size > 1 else 1
    if n_bits < needed:
        raise BvvtokError(
            f"{vocab_size:,} tokens need at least {needed} bits to be unique (2^{n_bits} = {2 ** n_bits:,}); raise {option('bits')}"
        )
    if n_bits == 16:
        # ids differ from their neighbour in the last bit: the distance is exactly 1 for any V >= 2
        return Codebook(id_codes(vocab_size, n_bits), 0, 1 if vocab_size > 1 else 0, True)
    bits, redraws = random_codes(vocab_size, n_bits, seed)
    distance, exact = min_hamming(bits, seed)
    return Codebook(bits, redraws, distance, exact)
