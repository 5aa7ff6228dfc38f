"""The connection protocol (core/lifecycle.py) over long simulated time, with a fake clock.

Each test plays a server's behaviour against the pure objects for hours or days of simulated time in
milliseconds: quiet markets, stalled servers, servers that stop pinging, servers that accept and drop
every connection, and the 24 h rotation.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest

from binance_ws.core.backoff import BackoffPolicy
from binance_ws.core.budget import SlidingWindow
from binance_ws.core.lifecycle import (
    NO_PONG,
    NO_SERVER_PING,
    PING,
    ROTATE,
    GiveUp,
    Lifecycle,
    Liveness,
    LivenessPolicy,
    Open,
    Wait,
)
from tests.engine._util import most_in_window

SPOT_HEALTH = LivenessPolicy(ping_interval_s=20.0, ping_timeout_s=10.0, server_ping_interval_s=20.0,
                             rotate_after_s=86_400.0 - 600.0)


def run_socket(live: Liveness, until: float, *, data_every: float | None, server_pings: bool,
               answers_pings: bool, start: float = 0.0) -> tuple[str | None, float, int]:
    """Drive ``live`` like an event loop would, stepping to each next event; returns the fatal answer
    (or None), the time it came, and how many pings we sent."""
    now = start
    pings = 0
    next_data = start + data_every if data_every else math.inf
    next_server_ping = start + 20.0 if server_pings else math.inf
    pong_at = math.inf
    while now < until:
        answer = live.poll(now)
        if answer is PING:
            pings += 1
            live.ping_sent(now)
            if answers_pings:
                pong_at = now + 0.05
        elif answer is not None:
            return answer, now, pings
        now = min(live.next_check(now), next_data, next_server_ping, pong_at, until)
        if now >= next_data:
            live.heard(now)
            next_data += data_every  # type: ignore[operator]
        if now >= next_server_ping:
            live.server_ping(now)
            next_server_ping += 20.0
        if now >= pong_at:
            live.heard(now)
            pong_at = math.inf
    return None, now, pings


def test_a_silent_stream_that_answers_pings_lives_a_whole_day() -> None:
    # The server sends no data at all for 23 h (a symbol nobody trades) but pings and answers pings.
    live = Liveness(SPOT_HEALTH, 0.0)
    answer, at, pings = run_socket(live, 23 * 3600.0, data_every=None, server_pings=True,
                                   answers_pings=True)
    assert answer is None and at == 23 * 3600.0
    assert pings == 0  # the server's own pings every 20 s are proof enough: we never had to ask


def test_silence_makes_us_ask_not_reconnect() -> None:
    # No server pings (e.g. a WS API session), no data: we ping after each interval, and answers keep
    # the socket alive for the whole day.
    policy = LivenessPolicy(ping_interval_s=20.0, ping_timeout_s=10.0, server_ping_interval_s=None)
    live = Liveness(policy, 0.0)
    answer, _, pings = run_socket(live, 24 * 3600.0, data_every=None, server_pings=False, answers_pings=True)
    assert answer is None
    assert 24 * 3600 / 21 < pings <= 24 * 3600 / 20


def test_a_busy_stream_never_pings() -> None:
    live = Liveness(SPOT_HEALTH, 0.0)
    answer, _, pings = run_socket(live, 3600.0, data_every=0.1, server_pings=True, answers_pings=True)
    assert answer is None and pings == 0


@pytest.mark.parametrize("stall_at", [0.0, 7.3, 19.99, 3600.0])
def test_a_stalled_server_is_found_within_ping_interval_plus_timeout(stall_at: float) -> None:
    live = Liveness(SPOT_HEALTH, 0.0)
    # Busy until ``stall_at``, then nothing: no data, no pings, no answers.
    if stall_at:
        run_socket(live, stall_at, data_every=0.01, server_pings=True, answers_pings=True)
        live.heard(stall_at)
    answer, at, _ = run_socket(live, stall_at + 3600.0, data_every=None, server_pings=False,
                               answers_pings=False, start=stall_at)
    assert answer == NO_PONG
    assert at - stall_at <= SPOT_HEALTH.ping_interval_s + SPOT_HEALTH.ping_timeout_s + 1e-9


def test_a_server_that_stops_pinging_is_dead_after_its_grace() -> None:
    # Data keeps coming (so we never ask), but the server stopped its own pings: past 3 cadences it is
    # not keeping the connection alive any more.
    live = Liveness(SPOT_HEALTH, 0.0)
    answer, at, pings = run_socket(live, 3600.0, data_every=0.5, server_pings=False, answers_pings=True)
    assert answer == NO_SERVER_PING and at == pytest.approx(60.0)
    assert pings == 0


def test_rotation_comes_at_its_age_and_can_be_postponed() -> None:
    live = Liveness(SPOT_HEALTH, 0.0)
    answer, at, _ = run_socket(live, 2 * 86_400.0, data_every=None, server_pings=True, answers_pings=True)
    assert answer == ROTATE and at == pytest.approx(86_400.0 - 600.0)
    live.postpone_rotation(at, 30.0)
    live.server_ping(at + 29.0)
    assert live.poll(at + 29.0) is None
    assert live.poll(at + 30.0) == ROTATE


def test_a_ping_waiting_for_a_slot_is_looked_at_again_soon() -> None:
    policy = LivenessPolicy(ping_interval_s=1.0, ping_timeout_s=2.0, server_ping_interval_s=20.0)
    live = Liveness(policy, 0.0)
    assert live.poll(1.0) == PING
    # Not sent yet: the next look must come before the server-ping deadline (60 s).
    assert live.next_check(1.0) <= 1.0 + policy.ping_timeout_s
    assert live.poll(1.5) is None  # asked already: no second ping
    live.ping_sent(1.7)
    assert live.next_check(1.7) == pytest.approx(3.7)
    assert live.poll(3.7) == NO_PONG


# -- across sockets ------------------------------------------------------------------------------

def drive_flapping(conns: int, hours: float, *, lives_s: float, policy: BackoffPolicy,
                   window: SlidingWindow, seed: int = 1) -> tuple[list[float], list[Lifecycle]]:
    """``conns`` connections against a server that accepts each socket and drops it ``lives_s`` later,
    for ``hours``; returns every attempt's time and the lifecycles."""
    rng = random.Random(seed)
    lifes = [Lifecycle(policy, window.acquire, stable_after_s=30.0) for _ in range(conns)]
    due = [rng.random() for _ in range(conns)]  # when each wants its next socket
    attempts: list[float] = []
    end = hours * 3600.0
    while True:
        i = min(range(conns), key=due.__getitem__)
        now = due[i]
        if now >= end:
            break
        life = lifes[i]
        decision = life.attempt(now)
        if isinstance(decision, Wait):
            due[i] = now + decision.delay_s
            continue
        if isinstance(decision, GiveUp):
            due[i] = math.inf
            continue
        assert isinstance(decision, Open)
        attempts.append(now)
        life.opened(now + 0.01)
        lost = life.lost(now + 0.01 + lives_s)
        due[i] = math.inf if isinstance(lost, GiveUp) else now + 0.01 + lives_s
    return attempts, lifes


def test_a_server_that_drops_every_connection_never_draws_more_than_the_limit() -> None:
    # 200 connections retrying forever against a server that accepts and drops each socket at once:
    # 6 simulated hours, never more than 300 attempts in any 5 minutes.
    window = SlidingWindow(300, 300.0)
    attempts, lifes = drive_flapping(200, 6.0, lives_s=0.0, policy=BackoffPolicy(max_retries=None),
                                     window=window)
    assert attempts
    assert most_in_window(sorted(attempts), 300.0) <= 300
    assert all(life.flaps > 0 for life in lifes)


def test_flaps_escalate_the_backoff_and_end_in_the_documented_give_up() -> None:
    # One connection, the seed's 5 retries: a socket that dies 1 s after opening is a failure, so the
    # waits grow and the connection gives up instead of reconnecting for ever.
    window = SlidingWindow(300, 300.0)
    attempts, lifes = drive_flapping(1, 1.0, lives_s=1.0, policy=BackoffPolicy(), window=window)
    assert len(attempts) == 6  # the first socket and 5 retries
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps == sorted(gaps) and gaps[-1] > 10 * gaps[0]
    assert lifes[0].flaps == 6


def test_a_stable_socket_resets_the_backoff() -> None:
    life = Lifecycle(BackoffPolicy(max_retries=5, jitter=0.0), stable_after_s=30.0)
    for _ in range(4):
        assert isinstance(life.attempt(life._not_before if life._not_before > 0 else 0.0), Open)
        life.failed(0.0)
    assert life.failures == 4
    t = 1000.0
    assert isinstance(life.attempt(t), Open)
    life.opened(t)
    life.settle(t + 29.0)
    assert life.failures == 4  # not yet stable
    life.settle(t + 30.0)
    assert life.failures == 0
    decision = life.lost(t + 3600.0)
    assert isinstance(decision, Wait) and decision.delay_s == pytest.approx(0.25)


def test_retry_after_is_honoured() -> None:
    life = Lifecycle(BackoffPolicy(max_retries=None, jitter=0.0))
    assert isinstance(life.attempt(0.0), Open)
    decision = life.failed(0.0, retry_after=120.0)
    assert isinstance(decision, Wait) and decision.delay_s == 120.0
    assert isinstance(life.attempt(119.0), Wait)
    assert isinstance(life.attempt(120.0), Open)


def test_the_budget_makes_an_attempt_wait() -> None:
    window = SlidingWindow(2, 10.0)
    life = Lifecycle(BackoffPolicy(max_retries=None, initial_s=0.0), window.acquire)
    assert isinstance(life.attempt(0.0), Open)
    life.failed(0.0)
    assert isinstance(life.attempt(0.0), Open)
    life.failed(0.0)
    decision = life.attempt(0.0)
    assert isinstance(decision, Wait) and decision.reason == "connection attempt budget"
    assert decision.delay_s == pytest.approx(10.0, abs=1e-3)
