"""Per-function request rate limit for async-run functions (``max_qps``).

The limit is a token bucket of ``max_qps`` tokens whose tokens come back one second after
they were spent: at most ``max_qps`` admissions in any one-second window, which is what SCF
promises ("1,000 QPS per function") and what a caller can check. A burst of 1,500 requests
inside one second therefore always sees 500 refusals, however fast the server is.

It is kept per node in memory; a rejected request leaves no record anywhere.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class QpsLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic, window_s: float = 1.0) -> None:
        self._clock = clock
        self._window_s = window_s
        self._spent: dict[str, deque[float]] = {}

    def try_acquire(self, key: str, max_qps: int) -> float:
        """Take one token for ``key``. Returns 0.0 when granted, else the seconds until a
        token comes back (for ``Retry-After``)."""
        now = self._clock()
        spent = self._spent.get(key)
        if spent is None:
            spent = self._spent[key] = deque()
        horizon = now - self._window_s
        while spent and spent[0] <= horizon:
            spent.popleft()
        if len(spent) >= max_qps:
            return max(spent[len(spent) - max_qps] - horizon, 0.001)
        spent.append(now)
        return 0.0

    def forget(self, key: str) -> None:
        self._spent.pop(key, None)
