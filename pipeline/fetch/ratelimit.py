"""Per-host token bucket shared by the download threads of one worker process.

`acquire(host)` blocks until the host's bucket has a token. Buckets start full
(`burst` tokens) and refill at `rate` tokens per second. A server that answers
429 with Retry-After can `pause` a host: nobody requests it before that moment.
A rate of None means unlimited (pauses still hold).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float
    paused_until: float = 0.0


class HostRateLimiter:
    def __init__(self, rate: float | None, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 requests/s or None, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1 token, got {burst}")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time callers spent waiting

    def _reserve(self, host: str) -> float:
        """Take a token if one is there (returns 0), else the seconds until one will be."""
        now = self._clock()
        b = self._buckets.get(host)
        if b is None:
            b = self._buckets[host] = _Bucket(tokens=self.burst, updated=now)
        if now < b.paused_until:
            return b.paused_until - now
        if self.rate is None:
            return 0.0
        b.tokens = min(self.burst, b.tokens + (now - b.updated) * self.rate)
        b.updated = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate

    def acquire(self, host: str) -> float:
        """Block until `host` may be requested; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                wait = self._reserve(host)
            if wait <= 0:
                with self._lock:
                    self.waited_s += waited
                return waited
            self._sleep(wait)
            waited += wait

    def pause(self, host: str, seconds: float) -> None:
        """Hold every request to `host` for `seconds` (a server asked us to back off)."""
        if seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            b = self._buckets.setdefault(host, _Bucket(tokens=0.0, updated=now))
            b.paused_until = max(b.paused_until, now + seconds)
