"""``--metrics-port`` / ``--metrics-addr``, shared by the commands that run a socket manager (``tail``,
``record``, ``collect``): one option type each, and one call to serve the manager's metrics.

A command declares ``metrics_port: MetricsPort = None, metrics_addr: MetricsAddr = DEFAULT_ADDR`` and,
once its manager exists (before subscribing, so no message goes uncounted)::

    metrics = start_metrics(manager, metrics_port, metrics_addr)   # None when no port was given
    sinks = sinks_for(metrics)                                     # no-ops when None
    ...
    sinks.observe_write_latency(seconds, sink="redis")             # its own figures
    sinks.written(n, sink="redis"); sinks.file_opened(); sinks.set_shards(owned)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Final, Protocol

import typer

from binance_ws.cli.app import EXIT_BAD_INPUT
from binance_ws.cli.common import _Failure

if TYPE_CHECKING:
    from binance_ws.engine.manager import AsyncSocketManager
    from binance_ws.metrics import Metrics

#: Where metrics are served unless ``--metrics-addr`` says otherwise: this machine only.
DEFAULT_ADDR: Final = "127.0.0.1"

MetricsPort = Annotated[int | None, typer.Option(
    "--metrics-port", metavar="PORT", min=1, max=65535,
    help="Serve Prometheus metrics on http://ADDR:PORT/metrics.")]
MetricsAddr = Annotated[str, typer.Option(
    "--metrics-addr", metavar="ADDR", help="Address for --metrics-port (0.0.0.0: every interface).")]


class SinkReport(Protocol):
    """What a command that writes reports (:class:`binance_ws.metrics.Sinks`, or nothing at all)."""

    def observe_write_latency(self, seconds: float, sink: str = "redis") -> None: ...
    def written(self, n: int = 1, sink: str = "redis") -> None: ...
    def file_opened(self) -> None: ...
    def set_shards(self, owned: Iterable[object]) -> None: ...


class _NoSinks:
    """Reports to nowhere: what :func:`sinks_for` gives when metrics are off."""

    def observe_write_latency(self, seconds: float, sink: str = "redis") -> None:
        pass

    def written(self, n: int = 1, sink: str = "redis") -> None:
        pass

    def file_opened(self) -> None:
        pass

    def set_shards(self, owned: Iterable[object]) -> None:
        pass


def sinks_for(metrics: Metrics | None) -> SinkReport:
    """``metrics.sinks``, or a reporter that does nothing when metrics are off (no port given), so the
    writing code reports unconditionally."""
    return _NoSinks() if metrics is None else metrics.sinks


def missing_prometheus(what: str) -> str | None:
    """None when prometheus-client (the ``metrics`` extra) is installed; else the one line saying so."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return f"{what} needs prometheus-client: pip install 'binance-ws[metrics]'"
    return None


def start_metrics(manager: AsyncSocketManager, port: int | None, addr: str = DEFAULT_ADDR) -> Metrics | None:
    """Serve ``manager``'s metrics on ``addr:port`` (None: no metrics). Call on the manager's loop.
    Raises :class:`~binance_ws.cli.common._Failure` (exit 2) when the address cannot be bound."""
    if port is None:
        return None
    if (why := missing_prometheus("--metrics-port")) is not None:
        raise _Failure(why, EXIT_BAD_INPUT)
    from binance_ws import metrics

    try:
        return metrics.expose(manager, port, addr=addr)
    except OSError as exc:
        raise _Failure(f"--metrics-port {port}: cannot listen on {addr}:{port} "
                       f"({exc.strerror or exc})", EXIT_BAD_INPUT) from None
