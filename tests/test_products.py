"""The product declarations are whole: every kind their grammar can produce has a route, a cadence entry
and (but futures user data) a model, and the rules they name are consistent."""

from __future__ import annotations

import pytest

from binance_ws.core.booksync import depth_weight, sequence_rule
from binance_ws.products import PRODUCTS, SEQUENCE_RULES, Product


@pytest.mark.parametrize("product", PRODUCTS.values(), ids=lambda p: p.name)
def test_every_kind_the_grammar_yields_is_declared(product: Product) -> None:
    reachable = {*product.symbol_kinds, *product.kline_kinds, *product.suffixed_kinds, "depth", "depthN",
                 "userData", *(kind for kind, _ in product.all_market.values())}
    reachable |= {f"pair{k[0].upper()}{k[1:]}" for k in product.symbol_kinds} & set(product.kinds)
    if product.rolling_tickers:
        reachable |= {"rollingTicker", "rollingTickerArr"}
    assert reachable == set(product.kinds)
    assert product.fast_kinds <= product.symbol_kinds
    assert product.depth_default_ms in product.depth_speeds_ms
    for name, kind in product.kinds.items():
        assert kind.route in ("public", "market"), name
        assert kind.model is not None, name


def test_sequence_rules_by_name_and_as_data() -> None:
    assert sequence_rule("spot") is SEQUENCE_RULES["spot"] is PRODUCTS["spot"].sequence
    assert sequence_rule("futures") is PRODUCTS["usdm"].sequence is PRODUCTS["coinm"].sequence
    with pytest.raises(ValueError, match="unknown sequence rule 'perp'"):
        sequence_rule("perp")
    # PROTOCOL 5.1 / 5.2 weights, read from the declarations.
    assert [depth_weight("spot", n) for n in (100, 101, 1000, 5000)] == [5, 25, 50, 250]
    assert [depth_weight(PRODUCTS["coinm"].sequence, n) for n in (5, 100, 500, 1000)] == [2, 5, 10, 20]
