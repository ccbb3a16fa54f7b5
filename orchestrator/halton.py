"""AlgoPerf's quasi-random search: a scrambled, shifted Halton sequence, point for point.

AlgoPerf's external tuning (mlcommons/algorithmic-efficiency, ``algoperf/halton.py``,
after Bousquet et al. 2017) draws its trials so; optbench follows the same
definition, so one search space gives the trials AlgoPerf gives:

- dimension ``d`` of ``D`` uses the prime ``p_d``: the ``D`` odd primes just
  below the largest odd prime under 1000 (under 2000, 3000, … when more are
  needed), in increasing order;
- its digits are scrambled by a permutation: ``0`` stays, ``1 … p−1`` are
  shuffled by ``numpy.random.RandomState(p)``; the same generator then draws
  the dimension's shift ``s ∈ [0, 1)``;
- point ``i`` (1-based) of the dimension is the scrambled radical inverse
  ``Σ_k σ(a_k) / p^(k+1)`` of ``i = Σ_k a_k p^k``, plus ``s``, modulo 1;
- the first 100 points are skipped;
- the points (tuples over the dimensions) are shuffled. AlgoPerf shuffles
  with numpy's global generator, unseeded, so its order varies between runs
  while the set of points does not; optbench's ``seed`` is the seed that
  global generator would have had (``numpy.random.seed(seed)``): the same
  seed gives AlgoPerf's order exactly.

A point's coordinate ``x`` becomes a value as AlgoPerf scales it:
``low · exp(x · log(high / low))`` on a log scale, ``low + x · (high − low)``
on a linear one, ``values[floor(x · len(values))]`` for feasible points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SKIP = 100
PRIME_BLOCK = 1000


def odd_primes_below(n: int) -> list[int]:
    """The odd primes below ``n``, increasing."""
    sieve = np.ones(n, dtype=bool)
    sieve[:2] = False
    for k in range(2, int(n**0.5) + 1):
        if sieve[k]:
            sieve[k * k::k] = False
    return [int(p) for p in np.flatnonzero(sieve) if p != 2]


def bases(dimensions: int) -> list[int]:
    """The primes of the dimensions: all but the largest of the top ``dimensions + 1`` odd primes of a block."""
    block = PRIME_BLOCK
    while len(primes := odd_primes_below(block)) < dimensions + 1:
        block += PRIME_BLOCK
    return primes[-dimensions - 1:-1] if dimensions else []


def digit_permutation(base: int) -> tuple[list[int], float]:
    """The scrambling of ``base``'s digits and the dimension's shift, both from ``RandomState(base)``."""
    rng = np.random.RandomState(base)
    shuffled = list(range(1, base))
    rng.shuffle(shuffled)
    return [0, *shuffled], float(rng.random_sample())


def dimension(count: int, base: int, digits: Sequence[int], shift: float | None) -> list[float]:
    """Points 1 … ``count`` of the scrambled radical inverse in ``base``, shifted modulo 1 when ``shift`` is given."""
    values = []
    for index in range(1, count + 1):
        value, denominator, rest = 0.0, base, index
        while rest:
            value += digits[rest % base] / denominator
            denominator *= base
            rest //= base
        values.append(math.fmod(value + shift, 1.0) if shift is not None else value)
    return values


def sequence(count: int, dimensions: int, seed: int) -> list[tuple[float, ...]]:
    """``count`` points of the ``dimensions``-dimensional sequence, in the order ``seed`` gives."""
    columns = []
    for base in bases(dimensions):
        digits, shift = digit_permutation(base)
        columns.append(dimension(count + SKIP, base, digits, shift)[SKIP:])
    points = list(zip(*columns, strict=True)) if columns else [() for _ in range(count)]
    np.random.RandomState(seed).shuffle(points)
    return points


def scale_log(x: float, low: float, high: float) -> float:
    return low * math.exp(x * math.log(high / low))


def scale_linear(x: float, low: float, high: float) -> float:
    return x * (high - low) + low


def pick(x: float, values: Sequence) -> object:
    return values[int(math.floor(x * len(values)))]
