"""``tail``'s readable line for every futures payload (PROTOCOL 8 examples in tests/futures_payloads.py):
each names its key numbers, none is empty or shows a key the payload does not have."""

from __future__ import annotations

from typing import Any

import pytest

from binance_ws.cli.common import _describe
from tests import futures_payloads as fp

EXAMPLES = [pytest.param(payload, id=f"{product}:{stream}")
            for product, examples in (("usdm", fp.USDM_EXAMPLES), ("coinm", fp.COINM_EXAMPLES))
            for stream, payload, _ in examples]


@pytest.mark.parametrize("payload", EXAMPLES)
def test_every_futures_payload_has_a_readable_line(payload: Any) -> None:
    _, fields = _describe(payload)
    assert fields and all(fields)
    line = "  ".join(fields)
    assert "None" not in line
    items = payload if isinstance(payload, list) else [payload]
    # The first number a reader looks for is on the line: price, index or the bar's close.
    for item in items:
        nested = [v for k, v in item.items() if k in ("o", "k") and isinstance(v, dict)]
        inner = nested[0] if nested else item
        wanted = inner.get("c") or inner.get("p") or inner.get("i") or inner.get("b")
        if isinstance(wanted, str) and wanted[:1].isdigit():
            assert wanted.rstrip("0").rstrip(".") in line, (line, wanted)


def test_force_order_line_shows_the_nested_liquidation() -> None:
    style, fields = _describe(fp.FORCE_ORDER)
    assert fields[0] == "BTCUSDT liquidation SELL 0.014 @ 9910"
    assert "FILLED" in fields and style == "red"


def test_mark_price_and_continuous_kline_lines() -> None:
    assert _describe(fp.MARK_PRICE)[1][:2] == ["mark 11794.15", "index 11784.62659091"]
    assert _describe(fp.CONTINUOUS_KLINE)[1][0] == "BTCUSDT PERPETUAL"
    assert _describe(fp.INDEX_PRICE)[1] == ["pair BTCUSD", "index 9636.5786"]
    assert _describe(fp.COMPOSITE_INDEX)[1] == ["index 554.41604065", "2 components"]
