from __future__ import annotations

import threading
import time

import pytest

from pipeline.fetch.ratelimit import HostRateLimiter


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_token_bucket_spaces_requests_per_host():
    clock = FakeClock()
    lim = HostRateLimiter(rate=2.0, burst=1, clock=clock, sleep=clock.sleep)
    assert lim.acquire("a") == 0.0  # bucket starts full
    assert lim.acquire("a") == pytest.approx(0.5)  # 2 requests/s
    assert lim.acquire("b") == 0.0  # other hosts have their own bucket
    clock.now += 10  # idle time refills, but only up to the burst
    assert lim.acquire("a") == 0.0
    assert lim.acquire("a") == pytest.approx(0.5)
    assert lim.waited_s == pytest.approx(1.0)


def test_burst_allows_that_many_at_once():
    clock = FakeClock()
    lim = HostRateLimiter(rate=1.0, burst=3, clock=clock, sleep=clock.sleep)
    assert [lim.acquire("h") for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(1.0)]


def test_pause_holds_host_even_when_unlimited():
    clock = FakeClock()
    lim = HostRateLimiter(rate=None, clock=clock, sleep=clock.sleep)
    assert lim.acquire("h") == 0.0
    lim.pause("h", 3.0)
    assert lim.acquire("h") == pytest.approx(3.0)
    assert lim.acquire("other") == 0.0
    assert lim.acquire("h") == 0.0


def test_threads_share_the_rate():
    lim = HostRateLimiter(rate=50.0, burst=1)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        lim.acquire("h")
        with lock:
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 6 requests at 50/s with one free token: at least 5 intervals of 20 ms
    assert max(stamps) - t0 >= 5 / 50.0 - 0.005


@pytest.mark.parametrize("rate,burst", [(0, 1), (-1, 1), (1, 0.5)])
def test_bad_settings(rate, burst):
    with pytest.raises(ValueError):
        HostRateLimiter(rate=rate, burst=burst)
