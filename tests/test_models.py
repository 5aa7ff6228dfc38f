"""Typed models: each Struct decodes the simulator's payloads for its stream (over loopback, through the
socket manager's typed-decoder slot) and Binance's recorded messages, and gives back exactly the wire
payload when encoded; a payload that does not match its model is skipped without ending the stream."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from binance_ws import models
from binance_ws.engine.manager import AsyncSocketManager
from binance_ws.engine.userdata import user_socket
from binance_ws.errors import InvalidStreamError
from binance_ws.markets import COINM, USDM
from binance_ws.models import MalformedPayloadError, decoder_for, user_event
from binance_ws.sim import Simulator
from tests.futures_payloads import (
    AGG_TRADE,
    COINM_AGG_TRADE,
    COINM_BOOK_TICKER,
    COINM_EXAMPLES,
    CONTRACT_INFO,
    DEPTH,
    USDM_EXAMPLES,
)
from tests.paths import RECORDINGS
from tests.userdata_support import accounts_sim, best, make_account

WAIT_S = 8.0

#: Keys Binance documents as "ignore" (PROTOCOL 4.2, 4.5) and keys of older payloads (trade buyer and
#: seller order ids, removed 2024-06-18): present on the wire, deliberately not modelled.
NOT_MODELLED = {"M", "B", "b", "a"}

#: One stream of every spot kind the simulator serves.
LIVE_STREAMS = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@kline_1s@+08:00",
                "btcusdt@miniTicker", "btcusdt@ticker", "btcusdt@ticker_1h", "btcusdt@bookTicker",
                "btcusdt@avgPrice", "btcusdt@depth5", "btcusdt@depth20@100ms", "btcusdt@depth",
                "btcusdt@depth@100ms", "!miniTicker@arr", "!ticker_4h@arr"]

EXPECTED_TYPES = {"trade": models.Trade, "aggTrade": models.AggTrade, "kline": models.Kline,
                  "miniTicker": models.MiniTicker, "ticker": models.Ticker,
                  "ticker_1h": models.RollingTicker, "bookTicker": models.BookTicker,
                  "avgPrice": models.AvgPrice, "depth5": models.PartialDepth,
                  "depth20": models.PartialDepth, "depth": models.DepthUpdate}


async def until(cond: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def wire(obj: Any) -> Any:
    """What a model encodes to: wire keys, JSON types (tuples become lists)."""
    return orjson.loads(msgspec.json.encode(obj))


def modelled(payload: Any, encoded: Any) -> Any:
    """``payload`` without the keys ``encoded`` lacks, at every depth; those may only be the documented
    ignore/legacy keys."""
    if isinstance(payload, dict) and isinstance(encoded, dict):
        missing = set(payload) - set(encoded)
        assert missing <= NOT_MODELLED, missing
        return {k: modelled(v, encoded[k]) for k, v in payload.items() if k in encoded}
    if isinstance(payload, list) and isinstance(encoded, list) and len(payload) == len(encoded):
        return [modelled(p, e) for p, e in zip(payload, encoded, strict=True)]
    return payload


def assert_faithful(obj: Any, payload: Any) -> None:
    """``obj`` holds every modelled key of ``payload`` with the same value, and nothing else."""
    encoded = wire(obj)
    assert encoded == modelled(payload, encoded)


# -- live simulator payloads over loopback ----------------------------------------------------------

async def test_every_stream_kind_decodes_the_simulators_payloads_over_loopback() -> None:
    async with Simulator(flow_rate=300.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        typed: dict[str, list[Any]] = {name: [] for name in LIVE_STREAMS}
        dicts: dict[str, list[Any]] = {name: [] for name in LIVE_STREAMS}
        recording = False

        def keep(into: list[Any]) -> Callable[[Any], None]:
            return lambda msg: into.append(msg) if recording else None

        # One subscribe call opens every stream at once (live SUBSCRIBEs are rate-limited); the typed
        # subscribers then join those routes. Both are recorded from the same frame on, so the dict
        # subscriber of a stream sees the same frames in the same order as the typed one.
        await sm.subscribe(LIVE_STREAMS, lambda m: None)
        for name in LIVE_STREAMS:
            await sm.subscribe(name, keep(typed[name]), decode=decoder_for(name))
            await sm.subscribe(name, keep(dicts[name]))
        recording = True
        # Periodic streams push every 1 s or 2 s; moving the simulator's clock makes them due at once.
        for _ in range(3):
            sim.clock.advance(2_000)
            await asyncio.sleep(0.05)
        await until(lambda: all(len(v) >= 2 for v in typed.values()),
                    f"every stream: {[n for n, v in typed.items() if len(v) < 2]}")
        for name in LIVE_STREAMS:
            got = [m for m in typed[name] if not isinstance(m, dict)]  # error events stay dicts
            want = [m for m in dicts[name] if m.get("e") != "error"] if name[0] != "!" else dicts[name]
            n = min(len(got), len(want))
            assert n >= 1, name
            for obj, payload in zip(got[:n], want[:n], strict=True):
                assert_faithful(obj, payload)
            kind = name.split("@")[1] if name[0] != "!" else None
            if kind is not None:
                expected = EXPECTED_TYPES["kline" if kind.startswith("kline") else kind]
                assert all(isinstance(o, expected) for o in got), name
            else:
                assert all(isinstance(o, list) for o in got), name
        trade = typed["btcusdt@trade"][0]
        assert trade.symbol == "BTCUSDT" and Decimal(trade.price) > 0 and isinstance(trade.trade_id, int)
        bar = typed["btcusdt@kline_1m"][0].kline
        assert bar.interval == "1m" and bar.close_time - bar.start_time == 59_999


async def test_one_decode_per_frame_is_shared_by_typed_subscribers() -> None:
    async with Simulator(flow_rate=300.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        first: list[Any] = []
        second: list[Any] = []
        await sm.subscribe("btcusdt@trade", first.append, decode=decoder_for("btcusdt@trade"))
        await sm.subscribe("btcusdt@trade", second.append, decode=decoder_for("btcusdt@trade"))
        await until(lambda: len(first) >= 3 and len(second) >= 3, "trades")
        n = min(len(first), len(second))
        assert all(a is b for a, b in zip(first[:n], second[:n], strict=True))


async def test_decode_typed_picks_the_models_decoder_for_the_streams_kind() -> None:
    async with Simulator(flow_rate=300.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        trades: list[Any] = []
        await sm.subscribe(["btcusdt@trade", "ethusdt@trade"], trades.append, decode="typed")
        await until(lambda: {t.symbol for t in trades} == {"BTCUSDT", "ETHUSDT"}, "trades of both symbols")
        assert all(isinstance(t, models.Trade) for t in trades)
        with pytest.raises(InvalidStreamError, match="one kind"):
            await sm.subscribe(["btcusdt@trade", "btcusdt@depth"], trades.append, decode="typed")
        with pytest.raises(ValueError, match="wrap=True"):
            await sm.subscribe("btcusdt@trade", trades.append, decode="typed", wrap=True)


async def test_a_payload_that_does_not_match_its_model_is_skipped_and_the_stream_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    stream = "btcusdt@trade"
    good = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1, "p": "1.00000000", "q": "1.00000000", "T": 1,
            "m": True, "M": True}
    async with Simulator(flow_rate=0.0) as sim, AsyncSocketManager(market=sim.market) as sm:
        got: list[Any] = []
        await sm.subscribe(stream, got.append, decode=decoder_for(stream))
        conn = sm.connections[0]
        sim.hub.publish(stream, good)
        await until(lambda: len(got) == 1, "first trade")
        with caplog.at_level(logging.WARNING, logger="binance_ws.engine"):
            sim.hub.publish(stream, {**good, "t": "two"})  # valid JSON, wrong type
            sim.hub.publish(stream, {"e": "trade", "E": 1})  # keys missing
            sim.hub.publish(stream, {**good, "t": 3})
            await until(lambda: len(got) == 5, "the trade after the broken ones")
        trades = [m for m in got if not isinstance(m, dict)]
        refused = [m for m in got if isinstance(m, dict) and m["type"] == "malformed"]
        assert [t.trade_id for t in trades] == [1, 3]
        # Each refused payload reached the subscriber in the documented error shape, in order; trade 2
        # never came (the refused payloads carry no readable id), which a typed subscriber is told too.
        assert got[1] is refused[0] and got[2] is refused[1]
        assert got[3] == {"e": "error", "type": "gap", "m": "Gap detected", "stream": stream, "first": 2,
                          "last": 2}
        assert all(e["e"] == "error" and e["type"] == "malformed" and e["stream"] == stream for e in refused)
        assert "Trade payload rejected" in refused[0]["detail"]
        assert sm.connections == [conn]  # same connection: nothing was dropped or reopened
        assert sum("payload refused" in r.getMessage() for r in caplog.records) == 2


def test_malformed_payload_error_is_clear_and_catchable() -> None:
    decode = decoder_for("btcusdt@trade")
    with pytest.raises(MalformedPayloadError) as info:
        decode(b'{"e":"trade","E":1,"s":"X","t":"nope","p":"1","q":"1","T":1,"m":true}')
    assert str(info.value) == "Trade payload rejected: Expected `int`, got `str` - at `$.t`"
    assert isinstance(info.value, ValueError)
    with pytest.raises(MalformedPayloadError, match="Trade payload rejected"):
        decode(b'{"e":"tra')
    with pytest.raises(MalformedPayloadError, match="UserEvent"):
        user_event({"e": "somethingNew", "E": 1})


def test_decoder_for_shares_one_decoder_per_kind_and_refuses_what_has_no_model() -> None:
    assert decoder_for("btcusdt@trade") is decoder_for("ethusdt@trade")
    assert decoder_for("btcusdt@depth") is decoder_for("bnbbtc@depth@100ms")
    assert decoder_for("btcusdt@depth5") is not decoder_for("btcusdt@depth")
    assert decoder_for("btcusdt@depth5", USDM) is decoder_for("btcusdt@depth", USDM)  # one futures shape
    assert decoder_for("btcusdt@depth", USDM) is not decoder_for("btcusdt@depth")
    # Futures user data: each product's own union (COIN-M has no TRADE_LITE).
    assert decoder_for("x" * 64, USDM) is decoder_for("y" * 64, USDM) is not decoder_for("x" * 64, COINM)
    with pytest.raises(MalformedPayloadError, match="CoinmUserEvent"):
        decoder_for("x" * 64, COINM)(b'{"e":"TRADE_LITE","E":1}')
    with pytest.raises(InvalidStreamError):
        decoder_for("BTCUSDT@trade")


# -- recorded Binance traffic -----------------------------------------------------------------------

def hftbacktest_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(stream, payload bytes)`` of each combined message in an hftbacktest recording."""
    with gzip.open(path, "rb") as fh:
        for line in fh:
            body = orjson.loads(line.split(b" ", 1)[1])
            if "stream" in body:
                yield body["stream"], orjson.dumps(body["data"])


def cryptofeed_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    with path.open("rb") as fh:
        next(fh)  # the connect line
        for line in fh:
            if line.strip():  # the file ends with an empty line
                body = orjson.loads(line.split(b": ", 1)[1])
                yield body["stream"], orjson.dumps(body["data"])


@pytest.mark.parametrize(("recording", "reader", "market_name"), [
    ("spot_btcusdt_20240808.hftbacktest.gz", hftbacktest_messages, "spot"),
    ("cryptofeed_BINANCE.ws.1.0", cryptofeed_messages, "spot"),
    ("usdm_btcusdt_20240808.hftbacktest.gz", hftbacktest_messages, "usdm"),
])
def test_recorded_binance_messages_decode_faithfully(recording: str, reader: Any, market_name: str) -> None:
    path = RECORDINGS / recording
    if not path.exists():
        pytest.skip(f"{path} not present")
    market = USDM if market_name == "usdm" else None
    kinds: dict[str, int] = {}
    # Each product's models hold every key of its payloads (the futures ones T, pu, e, E included).
    for n, (stream, payload) in enumerate(reader(path)):
        if market is not None and n >= 5_000:
            break
        obj = decoder_for(stream) if market is None else decoder_for(stream, market)
        decoded = obj(payload)
        kind = type(decoded).__name__
        kinds[kind] = kinds.get(kind, 0) + 1
        raw = orjson.loads(payload)
        if market is not None and kind == "Trade":
            raw.pop("X", None)  # the undocumented futures @trade's order type: not modelled
        assert_faithful(decoded, raw)
    if market is None:
        expected = {"DepthUpdate", "BookTicker"} | ({"Kline", "AggTrade"} if "cryptofeed" in recording
                                                     else {"Trade"})
    else:
        expected = {"FuturesDepthUpdate", "FuturesBookTicker", "Trade"}
    assert expected <= set(kinds), kinds


def test_rest_snapshot_line_decodes_as_partial_depth() -> None:
    path = RECORDINGS / "spot_btcusdt_20240808.hftbacktest.gz"
    if not path.exists():
        pytest.skip(f"{path} not present")
    with gzip.open(path, "rb") as fh:
        line = next(raw for raw in fh if b"lastUpdateId" in raw)
    payload = line.split(b" ", 1)[1]
    book = decoder_for("btcusdt@depth20")(payload)
    assert book.last_update_id == 50093239218 and book.bids and book.asks
    assert_faithful(book, orjson.loads(payload))


@pytest.mark.parametrize(("stream", "payload"), [
    # PROTOCOL.md examples for the kinds the simulator does not serve.
    ("bnbbtc@blockTrade", b'{"e":"blockTrade","E":1772506983582,"s":"BNBBTC","t":582,"p":"0.052",'
                          b'"q":"5838","T":1772506983321,"m":true}'),
    ("bazusd@referencePrice", b'{"e":"referencePrice","s":"BAZUSD","r":"1.00","t":1770313263917}'),
    ("bazusd@referencePrice", b'{"e":"referencePrice","s":"BAZUSD","r":null,"t":1770313263917}'),
])
def test_documented_examples_of_other_spot_kinds(stream: str, payload: bytes) -> None:
    assert_faithful(decoder_for(stream)(payload), orjson.loads(payload))


# -- user data ----------------------------------------------------------------------------------------

async def test_user_data_events_from_the_simulator_convert_faithfully() -> None:
    async with accounts_sim() as sim:
        creds = make_account(sim, "alice", "HMAC")
        make_account(sim, "mm", "HMAC")
        events: list[dict[str, Any]] = []
        async with creds.client(sim) as client:
            stream = await user_socket(client, events.append)
            try:
                accounts = sim.accounts
                accounts.deposit(accounts.account("alice"), "USDT", "5")
                bid, _ = best(sim)
                accounts.place_order(accounts.account("alice"), {
                    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                    "quantity": "0.01000", "price": str(Decimal(bid) + Decimal("0.01"))})
                accounts.place_order(accounts.account("mm"), {
                    "symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01000"})
                await until(lambda: sum(e["e"] == "executionReport" for e in events) >= 2, "fills")
            finally:
                await stream.stop()
    converted = [user_event(e) for e in events if e["e"] != "error"]
    kinds = {type(c).__name__ for c in converted}
    assert {"BalanceUpdate", "OutboundAccountPosition", "ExecutionReport"} <= kinds
    for obj, payload in zip(converted, [e for e in events if e["e"] != "error"], strict=True):
        assert_faithful(obj, payload)
    report = next(c for c in converted if isinstance(c, models.ExecutionReport)
                  and c.execution_type == "TRADE")
    assert report.symbol == "BTCUSDT" and Decimal(report.last_executed_quantity) == Decimal("0.01")
    # The same events as bytes (the legacy listen-key stream's frames) through the bytes decoder.
    decode = decoder_for("x" * 64)
    assert [decode(orjson.dumps(e)) for e in events if e["e"] != "error"] == converted


@pytest.mark.parametrize("payload", [
    # PROTOCOL.md 6.4 examples for events the simulator does not emit.
    {"e": "listStatus", "E": 1564035303637, "s": "ETHBTC", "g": 2, "c": "OCO", "l": "EXEC_STARTED",
     "L": "EXECUTING", "r": "NONE", "C": "F4QN4G8DlFATFlIUQ0cjdD", "T": 1564035303625,
     "O": [{"s": "ETHBTC", "i": 17, "c": "AJYsMjErWJesZvqlJCTUgL"},
           {"s": "ETHBTC", "i": 18, "c": "bfYPSQdLoqAJeNrOr9adzq"}]},
    {"e": "externalLockUpdate", "E": 1581557507324, "a": "NEO", "d": "10.00000000", "T": 1581557507268},
    {"e": "eventStreamTerminated", "E": 1728973001334},
    {"e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvoqJxFIILMdfAW5iGSOW", "S": "BUY",
     "o": "LIMIT", "f": "GTC", "q": "1.00000000", "p": "0.10264410", "P": "0.00000000", "F": "0.00000000",
     "g": -1, "C": "", "x": "NEW", "X": "NEW", "r": "NONE", "i": 4293153, "l": "0.00000000",
     "z": "0.00000000", "L": "0.00000000", "n": "0", "N": None, "T": 1499405658657, "t": -1, "v": 3,
     "I": 8641984, "w": True, "m": False, "M": False, "O": 1499405658657, "Z": "0.00000000",
     "Y": "0.00000000", "Q": "0.00000000", "W": 1499405658657, "V": "NONE"},
])
def test_documented_user_events(payload: dict[str, Any]) -> None:
    obj = user_event(payload)
    assert type(obj).__name__[0].lower() + type(obj).__name__[1:] == payload["e"]
    assert_faithful(obj, payload)


def test_listen_key_is_not_shown_in_repr() -> None:
    key = "k" * 64
    event = user_event({"e": "listenKeyExpired", "E": 1, "listenKey": key})
    assert event.listen_key == key and key not in repr(event)


# -- futures (PROTOCOL 8) -----------------------------------------------------------------------------

@pytest.mark.parametrize(("market", "stream", "payload", "model"),
                         [(USDM, *e) for e in USDM_EXAMPLES] + [(COINM, *e) for e in COINM_EXAMPLES],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_documented_futures_payloads_decode_faithfully(market: Any, stream: str, payload: Any,
                                                       model: str) -> None:
    decoded = decoder_for(stream, market)(orjson.dumps(payload))
    assert type(decoded).__name__ == model
    assert_faithful(decoded, payload)


def test_futures_models_read_the_futures_fields() -> None:
    depth = decoder_for("btcusdt@depth", USDM)(orjson.dumps(DEPTH))
    assert (depth.prev_final_update_id, depth.final_update_id, depth.transaction_time) == (
        390497794, 390497878, 1571889248276)
    trade = decoder_for("btcusdt@aggTrade", USDM)(orjson.dumps(AGG_TRADE))
    assert trade.normal_quantity == "100"
    assert decoder_for("btcusd_200626@aggTrade", COINM)(orjson.dumps(COINM_AGG_TRADE)).normal_quantity is None
    info = decoder_for("!contractInfo", USDM)(orjson.dumps(CONTRACT_INFO))
    assert info.brackets is not None and info.brackets[1].max_leverage == 20
    ticker = decoder_for("btcusd_200626@bookTicker", COINM)(orjson.dumps(COINM_BOOK_TICKER))
    assert ticker.pair == "BTCUSD"
    # A spot depth payload (no pu, no T) is not a futures depthUpdate: refused, not half-read.
    with pytest.raises(MalformedPayloadError, match="FuturesDepthUpdate"):
        decoder_for("btcusdt@depth", USDM)(b'{"e":"depthUpdate","E":1,"s":"X","U":1,"u":2,"b":[],"a":[]}')
