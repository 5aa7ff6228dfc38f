"""The simulator's account REST routes: signed ``/api/v3/order`` (POST, DELETE, GET), ``GET
/api/v3/account``, ``openOrders`` (GET, DELETE), ``allOrders``, ``myTrades``, ``account/commission``,
``rateLimit/order``, ``POST /api/v3/order/test`` and ``POST /api/v3/order/cancelReplace`` (the futures
routes, listen keys included, are :mod:`binance_ws.sim.futures_rest`'s).

Requests are authenticated exactly as Binance does (../shared/PROTOCOL.md 7.1): the API key in the
``X-MBX-APIKEY`` header, and a signature over the raw query string concatenated with the raw body, the
``signature`` parameter itself left out. The raw (still percent-encoded) text is what gets verified, so a
client that signs before encoding fails with -1022, as on Binance since 2026-01-15. Parameters may come
in the query, the form body or both; the query wins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from binance_ws.sim.accounts import Account, Accounts, SimApiError

#: The header that carries the API key (PROTOCOL 7.1).
API_KEY_HEADER: Final = "X-MBX-APIKEY"
#: Spot REST prefix (PROTOCOL 1.4); every route here is TRADE / USER_DATA security, i.e. signed.
PREFIX: Final = "/api/v3"

_Action = Callable[[Accounts, Account, dict[str, str]], Any]


def _without_signature(raw: str) -> str:
    """``raw`` (a query string or form body, as sent) without its ``signature=`` pair."""
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(exc: SimApiError) -> web.Response:
    return _json(exc.body(), exc.status)


async def signed(request: web.Request, accounts: Accounts) -> tuple[Account, dict[str, str]]:
    """Authenticate a signed request; returns the account and the merged parameters."""
    # The raw text as sent: yarl's ``query_string`` is already decoded, which is not what was signed.
    query_raw = request.rel_url.raw_query_string
    body_raw = (await request.text()) if request.can_read_body else ""
    params = dict(parse_qsl(body_raw, keep_blank_values=True))
    params.update(parse_qsl(query_raw, keep_blank_values=True))
    signature = params.pop("signature", None)
    payload = _without_signature(query_raw) + _without_signature(body_raw)
    account = accounts.authenticate(request.headers.get(API_KEY_HEADER), params, payload, signature)
    return account, params


def _handler(accounts: Accounts, action: _Action) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            account, params = await signed(request, accounts)
            return _json(action(accounts, account, params))
        except SimApiError as exc:
            return _error(exc)
    return handle


def add_routes(app: web.Application, accounts: Accounts) -> None:
    """Register the account routes on the simulator's REST ``app`` (before it starts): the signed
    ``/api/v3/order``, ``/api/v3/account`` and the other spot account endpoints.

    They act on ``accounts``.
    """
    app.router.add_post(f"{PREFIX}/order", _handler(accounts, lambda a, acct, p: a.place_order(acct, p)))
    app.router.add_delete(f"{PREFIX}/order", _handler(accounts, lambda a, acct, p: a.cancel_order(acct, p)))
    app.router.add_get(f"{PREFIX}/order", _handler(accounts, lambda a, acct, p: a.query_order(acct, p)))
    app.router.add_get(f"{PREFIX}/account", _handler(accounts, lambda a, acct, p: a.account_info(acct)))
    app.router.add_get(f"{PREFIX}/openOrders", _handler(accounts, lambda a, acct, p: a.open_orders(acct, p)))
    app.router.add_delete(f"{PREFIX}/openOrders",
                          _handler(accounts, lambda a, acct, p: a.cancel_open_orders(acct, p)))
    app.router.add_get(f"{PREFIX}/allOrders", _handler(accounts, lambda a, acct, p: a.all_orders(acct, p)))
    app.router.add_get(f"{PREFIX}/myTrades", _handler(accounts, lambda a, acct, p: a.my_trades(acct, p)))
    app.router.add_post(f"{PREFIX}/order/test", _handler(accounts, lambda a, acct, p: a.test_order(acct, p)))
    app.router.add_post(f"{PREFIX}/order/cancelReplace",
                        _handler(accounts, lambda a, acct, p: a.cancel_replace(acct, p)))
    app.router.add_get(f"{PREFIX}/account/commission",
                       _handler(accounts, lambda a, acct, p: a.commission(acct, p)))
    app.router.add_get(f"{PREFIX}/rateLimit/order",
                       _handler(accounts, lambda a, acct, p: a.order_rate_limits(acct)))
