"""A token bucket: at most ``rate`` sends a second per channel (0 = unlimited)."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """Blocks just long enough to keep to ``rate`` per second, with bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.clock = clock
        self.tokens = float(self.burst)
        self.updated = clock()

    def delay(self) -> float:
        """Take one token; return how many seconds the caller must wait before sending."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
