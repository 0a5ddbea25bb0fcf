"""A CPU-heavy transform: find the primes in a range (a segmented sieve), then hash them.

Event: ``{"start": 0, "end": 100000000, "segments": 20}``. Progress is printed after every
segment; the result has the number of primes, the largest one and a SHA-256 of them all.
Give it more memory for a faster machine share, and a longer timeout for a wider range.
"""

import hashlib
import math
import time
from typing import Any


def small_primes(limit: int) -> list[int]:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for n in range(2, math.isqrt(limit) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, limit + 1, n)))
    return [n for n in range(limit + 1) if sieve[n]]


def primes_between(low: int, high: int, base: list[int]) -> list[int]:
    """The primes in ``[low, high)``, given every prime up to ``sqrt(high)``."""
    segment = bytearray([1]) * (high - low)
    for p in base:
        first = max(p * p, (low + p - 1) // p * p)
        if first >= high:
            continue
        segment[first - low :: p] = bytearray(len(range(first, high, p)))
    return [low + i for i, flag in enumerate(segment) if flag and low + i >= 2]


def main_handler(event: Any, context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    start = max(0, int(event.get("start", 0)))
    end = int(event.get("end", 100_000_000))
    segments = max(1, int(event.get("segments", 20)))
    if end <= start:
        raise ValueError(f"end ({end}) must be greater than start ({start})")
    began = time.monotonic()
    base = small_primes(math.isqrt(end) + 1)
    digest = hashlib.sha256()
    count = 0
    largest = None
    size = math.ceil((end - start) / segments)
    for index in range(segments):
        low = start + index * size
        high = min(end, low + size)
        found = primes_between(low, high, base)
        for prime in found:
            digest.update(prime.to_bytes(8, "big"))
        count += len(found)
        largest = found[-1] if found else largest
        elapsed_s = time.monotonic() - began
        print(
            f"segment {index + 1}/{segments}: {len(found)} primes below {high}, {elapsed_s:.1f} s"
        )
        if high >= end:
            break
    return {
        "range": [start, end],
        "primes": count,
        "largest": largest,
        "sha256": digest.hexdigest(),
        "seconds": round(time.monotonic() - began, 3),
    }
