"""Prometheus metrics of an operator, served with prometheus-client.

Every operator exports ``opg_<role>_head_lag_blocks`` (chain head minus the last block it has fully processed),
``opg_<role>_last_processed_block``, ``opg_<role>_alerts_total``, ``opg_<role>_errors_total`` and
``opg_<role>_last_error_timestamp_seconds`` with ``opg_<role>_last_error_info{message=…}``; each role adds its own
counters. Each operator has its own registry, so tests and several operators in one process never collide.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, start_http_server

from opgkit.cli import UserError


class OperatorMetrics:
    def __init__(self, role: str) -> None:
        self.role = role
        self.registry = CollectorRegistry(auto_describe=True)
        self.lag = self.gauge("head_lag_blocks", "Chain head minus the last block fully processed")
        self.processed_block = self.gauge("last_processed_block", "Last block fully processed")
        self.alerts = self.counter("alerts", "Alerts raised (each also logged)")
        self.errors = self.counter("errors", "Errors met (node, data or transaction failures)")
        self.last_error_time = self.gauge("last_error_timestamp_seconds", "When the last error happened")
        self.last_error = Info(f"opg_{role}_last_error", "The last error's message", registry=self.registry)

    def counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"opg_{self.role}_{name}", documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(f"opg_{self.role}_{name}", documentation, registry=self.registry)

    def error(self, message: str) -> None:
        self.errors.inc()
        self.last_error_time.set(time.time())
        self.last_error.info({"message": message[:300]})

    def serve(self, address: str) -> str:
        """Serve ``/metrics`` on ``HOST:PORT`` (port 0 picks a free one); returns the address served."""
        host, _, port = address.rpartition(":")
        try:
            server, _thread = start_http_server(int(port), host or "127.0.0.1", registry=self.registry)
        except ValueError as error:
            raise UserError(f"--metrics {address!r} is not HOST:PORT") from error
        except OSError as error:
            raise UserError(f"cannot serve metrics on {address}: {error.strerror or error}; pick another port") from error
        bound_host, bound_port = server.server_address[:2]
        return f"{bound_host}:{bound_port}"
