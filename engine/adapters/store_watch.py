"""Whether the store answers, as this process last saw it: ``huoke serve`` answers 503 at once
while it does not, instead of letting each request wait on the connection pool."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

#: Seconds a client is told to wait (``Retry-After``) while the store does not answer.
RETRY_AFTER = 5


class StoreWatch:
    """Whether the store answers, as this process last saw it. With a ``probe`` (PostgreSQL: a
    ``SELECT 1`` on its own connection) a thread checks every ``every`` seconds, so an outage is
    noticed before a request waits on it; without one, a request that met an unreachable store
    marks it down and, ``RETRY_AFTER`` seconds later, the next request tries it again."""

    def __init__(
        self, probe: Callable[[], None] | None = None, every: float = 1.0, on_back: Callable[[], None] | None = None
    ) -> None:
        self.probe, self.every, self.on_back = probe, every, on_back
        self.down_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def down(self) -> bool:
        if self.down_since is None:
            return False
        # Without a probe, the next request after RETRY_AFTER finds out.
        return self.probe is not None or time.monotonic() - self.down_since < RETRY_AFTER

    def failed(self) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()

    def answered(self) -> None:
        self.down_since = None

    def start(self) -> None:
        if self.probe is not None and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="store-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if self.probe is not None:
                    self.probe()
            except Exception:  # any failure to answer a SELECT 1 is an outage
                self.failed()
                continue
            if self.down_since is not None and self.on_back is not None:
                with contextlib.suppress(Exception):
                    self.on_back()  # before the first request is let through again
            self.answered()
