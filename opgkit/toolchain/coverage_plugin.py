"""pytest plugin behind `make coverage`: traces every transaction and call the suite sends to anvil.

Enabled when ``OPG_COVERAGE`` names a directory (tests/conftest.py registers it then). Each pytest process
(an xdist worker included) wraps web3's HTTP provider so that right after

* ``eth_sendRawTransaction`` / ``eth_sendTransaction``: the mined transaction is traced
  (``debug_traceTransaction``, struct logs without stack/memory/storage, plus ``callTracer`` when the
  transaction calls other contracts);
* ``eth_call``, and an ``eth_estimateGas`` that fails (ape estimates before sending, so a transaction that
  reverts is often never sent): the same call is traced with ``debug_traceCall`` on the same block.

Traces are taken at once because ape's per-test isolation (evm_snapshot/evm_revert) discards the chain
afterwards. At the end of the session the counts go to ``$OPG_COVERAGE/hits-<pid>.json``;
``python -m opgkit.toolchain.coverage report`` merges them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from web3 import HTTPProvider

from opgkit.toolchain import coverage

ENV_VAR = "OPG_COVERAGE"
CALL_TYPES = {"CALL", "STATICCALL", "DELEGATECALL", "CALLCODE"}
CREATE_TYPES = {"CREATE", "CREATE2"}


class Tracer:
    def __init__(self, catalog: coverage.Catalog, make_request):
        self.catalog = catalog
        self.request = make_request  # the unwrapped HTTPProvider.make_request
        self.hits = coverage.Hits()
        self.seconds = 0.0
        self.failures: list[str] = []  # the first few reasons a trace could not be taken

    def _rpc(self, provider, method, params):
        response = self.request(provider, method, params)
        if "error" in response:
            raise RuntimeError(response["error"])
        return response["result"]

    def _frames(self, provider, call: dict, block) -> list[coverage.CodeInfo | None]:
        """The code of every call frame that executes code, in the order the struct logs enter them."""
        codes: dict[str, bytes] = {}
        frames = []

        def code_at(address: str) -> bytes:
            if address not in codes:
                codes[address] = bytes.fromhex(self._rpc(provider, "eth_getCode", [address, block])[2:])
            return codes[address]

        def walk(frame: dict):
            kind = frame.get("type", "CALL")
            if kind in CREATE_TYPES:
                initcode = bytes.fromhex(frame.get("input", "0x")[2:])
                if initcode:
                    frames.append(self.catalog.creation(initcode))
                else:
                    return
            elif kind in CALL_TYPES:
                to = frame.get("to")
                if not to or int(to, 16) < coverage.PRECOMPILE_LIMIT:
                    return
                code = code_at(to)
                if not code:
                    return
                frames.append(self.catalog.runtime(code))
            else:
                return
            for child in frame.get("calls", []):
                walk(child)

        walk(call)
        return frames

    def _wait_until_mined(self, provider, tx_hash: str) -> None:
        # anvil answers eth_sendRawTransaction before the block is stored; a trace asked for before then comes
        # back empty (no steps, no error), so wait for the receipt first.
        for _ in range(500):
            if self._rpc(provider, "eth_getTransactionReceipt", [tx_hash]):
                return
            time.sleep(0.01)
        raise RuntimeError(f"{tx_hash} was not mined")

    def trace_transaction(self, provider, tx_hash: str) -> None:
        self._wait_until_mined(provider, tx_hash)
        steps = self._rpc(provider, "debug_traceTransaction", [tx_hash, coverage.STRUCT_LOG_OPTIONS])["structLogs"]
        if not steps:
            return
        tx = self._rpc(provider, "eth_getTransactionByHash", [tx_hash])
        block = tx["blockNumber"]
        if max(step["depth"] for step in steps) == 1:  # one frame: no need to replay it for the call tree
            top = {"type": "CALL", "to": tx["to"]} if tx.get("to") else {"type": "CREATE", "input": tx["input"]}
        else:
            top = self._rpc(provider, "debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
        # Code after the block: right for everything but contracts created and called in the same transaction.
        coverage.record_trace(self.catalog, self.hits, steps, self._frames(provider, top, block))

    def trace_call(self, provider, call: dict, block) -> None:
        block = block or "latest"
        options = dict(coverage.STRUCT_LOG_OPTIONS)
        steps = self._rpc(provider, "debug_traceCall", [call, block, options])["structLogs"]
        if not steps:
            return
        if max(step["depth"] for step in steps) == 1:
            data = call.get("data") or call.get("input") or "0x"
            top = {"type": "CALL", "to": call["to"]} if call.get("to") else {"type": "CREATE", "input": data}
        else:
            top = self._rpc(provider, "debug_traceCall", [call, block, {"tracer": "callTracer"}])
        coverage.record_trace(self.catalog, self.hits, steps, self._frames(provider, top, block))

    def after(self, provider, method: str, params, response) -> None:
        started = time.perf_counter()
        try:
            if method in ("eth_sendRawTransaction", "eth_sendTransaction") and response.get("result"):
                self.trace_transaction(provider, response["result"])
            elif method == "eth_call" and params:
                self.trace_call(provider, params[0], params[1] if len(params) > 1 else None)
            elif method == "eth_estimateGas" and params and "error" in response:
                self.trace_call(provider, params[0], params[1] if len(params) > 1 else None)
        except Exception as error:  # A trace that fails is counted and its reason kept, never fatal.
            self.hits.untraced += 1
            if len(self.failures) < 5:
                self.failures.append(f"{method}: {error}"[:300])
        self.seconds += time.perf_counter() - started

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"hits-{os.getpid()}.json"
        data = self.hits.to_json() | {"trace_seconds": round(self.seconds, 1), "untraced_reasons": self.failures}
        path.write_text(json.dumps(data))
        return path


class CoveragePlugin:
    def __init__(self, directory: Path):
        self.directory = directory
        self.tracer = Tracer(coverage.Catalog(coverage.compile_for_coverage()), HTTPProvider.make_request)
        original, tracer = HTTPProvider.make_request, self.tracer

        def make_request(provider, method, params):
            response = original(provider, method, params)
            if isinstance(response, dict):
                tracer.after(provider, method, params, response)
            return response

        HTTPProvider.make_request = make_request
        self._original = original

    def pytest_sessionfinish(self, session):
        HTTPProvider.make_request = self._original
        self.tracer.save(self.directory)

    def pytest_terminal_summary(self, terminalreporter):
        hits = self.tracer.hits
        terminalreporter.write_line(
            f"coverage: {hits.traces} traces ({hits.untraced} untraced), {self.tracer.seconds:.0f} s spent tracing, "
            f"data in {self.directory}")
        for reason in self.tracer.failures:
            terminalreporter.write_line(f"  untraced: {reason}")


def plugin_from_environment() -> CoveragePlugin | None:
    directory = os.environ.get(ENV_VAR)
    return CoveragePlugin(Path(directory)) if directory else None
