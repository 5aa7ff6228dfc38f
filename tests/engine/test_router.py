"""The pure parts of the hot path: frame splitting, fan-out, and the rotation handover state machine."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from binance_ws import errors
from binance_ws.core.plan import Open
from binance_ws.core.sequence import SequenceTracker
from binance_ws.engine.delivery import RawMessage, Subscription
from binance_ws.engine.manager import RoutedPlan
from binance_ws.engine.router import Handover, Route, route_key, split_combined
from binance_ws.markets import SPOT, USDM


def test_split_combined() -> None:
    payload = b'{"e":"trade","t":7}'
    key = route_key("btcusdt@trade")
    assert split_combined(b'{"stream":"btcusdt@trade","data":' + payload + b"}") == (key, payload)
    assert split_combined(b'{"result":null,"id":1}') is None
    assert split_combined(b'{"e":"serverShutdown","E":1}') is None


def test_route_decodes_once_and_fans_out_by_mode() -> None:
    got: dict[str, list[object]] = {"dict": [], "wrap": [], "raw": [], "typed": []}
    route = Route("btcusdt@trade", SequenceTracker.for_stream("btcusdt@trade"))
    route.add(Subscription([route.name], got["dict"].append))
    route.add(Subscription([route.name], got["wrap"].append, wrap=True))
    route.add(Subscription([route.name], got["raw"].append, decode="raw"))
    route.add(Subscription([route.name], got["typed"].append, decode=lambda b: ("typed", b)))
    for t in (1, 2, 2, 5):
        route.feed(b'{"e":"trade","t":%d}' % t)
    assert [m["t"] for m in got["dict"] if "t" in m] == [1, 2, 5]  # the duplicate 2 is dropped
    gap = errors.error_event(errors.ERR_GAP, errors.MSG_GAP, stream="btcusdt@trade", first=3, last=4)
    assert got["dict"][2] == gap and got["wrap"][2] == gap and got["raw"][2] == gap
    assert got["wrap"][0] == {"stream": "btcusdt@trade", "data": got["dict"][0]}
    assert got["wrap"][0]["data"] is got["dict"][0]  # one decode for every dict subscriber
    assert got["raw"][0] == RawMessage("btcusdt@trade", b'{"e":"trade","t":1}')
    stream, data = got["raw"][0]  # unpacks like the (stream, data) pair it is
    assert (stream, data) == ("btcusdt@trade", b'{"e":"trade","t":1}')
    assert got["typed"][0] == ("typed", b'{"e":"trade","t":1}')



def _refuse_bad(data: bytes) -> object:
    """A typed decoder that refuses a payload holding ``bad``, as a model refuses a wrong shape."""
    if b"bad" in data:
        raise ValueError("refused")
    return ("typed", data)


@pytest.mark.parametrize("stream", ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@depth@100ms",
                                    "btcusdt@ticker"])
@pytest.mark.parametrize("mode", ["dict", "wrap", "raw", "typed"])
def test_single_callback_feed_matches_the_general_feed(stream: str, mode: str) -> None:
    """The dedicated feed a lone callback subscriber gets delivers exactly what the general feed would:
    sequence gaps and duplicates, a missing id, a refused typed payload, a callback that raises."""
    key = {"btcusdt@trade": "t", "btcusdt@aggTrade": "a"}.get(stream)
    payloads = []
    for n in (1, 2, 2, 5, 6, 3, 7):
        if key is not None:
            payloads.append(b'{"e":"x","%s":%d}' % (key.encode(), n))
        else:
            payloads.append(b'{"e":"x","U":%d,"u":%d,"pu":%d}' % (n, n, n - 1))
    payloads[4:4] = [b'{"e":"x"}', b'{"e":"bad"}', b'{"e":"boom"}', b"[1]"]

    def run(general: bool) -> tuple[list[object], list[str | None]]:
        got: list[object] = []

        def callback(msg: object) -> None:
            got.append(msg)
            if "boom" in repr(msg):
                raise RuntimeError("subscriber bug")
        decode = _refuse_bad if mode == "typed" else "raw" if mode == "raw" else "dict"
        route = Route(stream, SequenceTracker.for_stream(stream))
        route.add(Subscription([stream], callback, wrap=mode == "wrap", decode=decode))
        feed = route._feed_general if general else route.feed
        assert (feed == route._feed_general) is general  # the lone callback has its own feed
        outcomes: list[str | None] = []
        for data in payloads:
            try:
                feed(data)
                outcomes.append(None)
            except Exception as exc:  # what the connection would log and skip
                outcomes.append(type(exc).__name__)
        return got, outcomes

    assert run(general=False) == run(general=True)


@settings(max_examples=200, deadline=None)
@given(
    start_old=st.integers(0, 20),
    lag=st.integers(0, 20),
    total=st.integers(1, 60),
    order=st.lists(st.booleans(), min_size=200, max_size=200),
    old_dies_after=st.one_of(st.none(), st.integers(0, 80)),
    stream=st.sampled_from(["btcusdt@ticker", "btcusdt@trade", "btcusdt@depth@100ms"]),
)
def test_handover_delivers_each_message_exactly_once(start_old: int, lag: int, total: int,
                                                      order: list[bool], old_dies_after: int | None,
                                                      stream: str) -> None:
    """Old and new connections carry the same message sequence; the new one starts ``lag`` messages
    later (it subscribed later). Whatever the interleaving of their frames, and whether the old one
    dies early (forced switch), each message from the first the old one delivered is delivered once,
    in order, up to the end of the new one's stream: compared by bytes on an id-less stream, by ids on
    the others."""
    if stream.endswith("@trade"):
        msgs = [orjson.dumps({"e": "trade", "t": 1000 + i}) for i in range(start_old + lag + total)]
    elif "@depth" in stream:
        msgs = [orjson.dumps({"U": 10 * i + 1, "u": 10 * i + 10}) for i in range(start_old + lag + total)]
    else:
        msgs = [orjson.dumps({"E": 1000 + i}) for i in range(start_old + lag + total)]
    old = msgs[start_old:]
    new = msgs[start_old + lag:]
    out: list[bytes] = []
    route = Route(stream, SequenceTracker.for_stream(stream))
    route.add(Subscription([route.name], callback=None, decode="raw"))
    route.feed = out.append  # type: ignore[method-assign]
    handover = Handover(route, lambda: None)
    i = j = 0
    old_alive = True
    for pick_old in order:
        # The old socket can die (forcing the switch) once it has delivered what precedes the new one's
        # first message; dying earlier loses messages for real, which the sequence tracker reports.
        if old_alive and old_dies_after is not None and i >= max(old_dies_after, lag):
            old_alive = False
            handover.force()
        if pick_old and old_alive and i < len(old):
            handover.from_old(old[i])
            i += 1
        elif j < len(new):
            handover.from_new(new[j])
            j += 1
    while j < len(new):
        handover.from_new(new[j])
        j += 1
    # The grace period ends the handover only after the old socket delivered what it had in flight.
    while old_alive and i < len(old) and not handover.switched:
        handover.from_old(old[i])
        i += 1
    if not handover.switched:
        handover.force()
    if out:
        first = msgs.index(out[0])
        assert out == msgs[first:first + len(out)], "lost or repeated a message"
        assert out[-1] == msgs[-1]


def test_usdm_streams_are_planned_on_their_routed_paths() -> None:
    plan = RoutedPlan(USDM, 1024)
    actions = plan.add(["btcusdt@aggTrade", "btcusdt@depth", "btcusdt@bookTicker", "btcusdt@kline_1m",
                        "btcusdt@depth5@100ms", "btcusdt@markPrice"])
    opened = {plan.base_url(a.conn_id): set(a.streams) for a in actions if isinstance(a, Open)}
    assert opened == {
        "wss://fstream.binance.com/public": {"btcusdt@depth", "btcusdt@bookTicker", "btcusdt@depth5@100ms"},
        "wss://fstream.binance.com/market": {"btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@markPrice"},
    }
    assert plan.streams_of(plan.connection_of("btcusdt@depth") or "") == ("btcusdt@depth",
                                                                        "btcusdt@bookTicker",
                                                                        "btcusdt@depth5@100ms")
    spot = RoutedPlan(SPOT, 1024)
    (only,) = spot.add(["btcusdt@depth", "btcusdt@trade"])
    assert isinstance(only, Open) and spot.base_url(only.conn_id) == SPOT.stream_url


def test_handover_of_an_id_stream_compares_ids_not_bytes() -> None:
    """The same trade can reach the two connections in different bytes (key order, spacing, an added
    field): compared by bytes it would be delivered twice; by id it is delivered once."""
    out: list[bytes] = []
    route = Route("btcusdt@trade", SequenceTracker.for_stream("btcusdt@trade"))
    route.feed = out.append  # type: ignore[method-assign]
    handover = Handover(route, lambda: None)
    for t in (1, 2, 3):
        handover.from_old(b'{"e":"trade","t":%d}' % t)
    for t in (2, 3, 4, 5):
        handover.from_new(b'{"t": %d, "e": "trade", "x": 1}' % t)
    assert handover.switched
    assert [orjson.loads(m)["t"] for m in out] == [1, 2, 3, 4, 5]


def test_handover_takes_a_restarted_numbering_on_the_new_connection_at_once() -> None:
    """Ids below the old connection's window on the new one are a restarted numbering, not messages the
    old one delivered: the new one leads (the route's tracker reports the reset), nothing is dropped."""
    out: list[bytes] = []
    route = Route("btcusdt@trade", SequenceTracker.for_stream("btcusdt@trade"))
    route.feed = out.append  # type: ignore[method-assign]
    handover = Handover(route, lambda: None)
    handover.from_old(b'{"t":500000}')
    handover.from_new(b'{"t":1}')
    handover.from_new(b'{"t":2}')
    handover.from_old(b'{"t":500001}')  # the old side is ignored once the new one leads
    assert handover.switched
    assert [orjson.loads(m)["t"] for m in out] == [500000, 1, 2]
