"""`make coverage`'s mapping from anvil traces to Solidity lines, functions and branches, on a tiny project
whose executed lines and branch arms are known."""

import shutil

import pytest
from web3 import HTTPProvider

from opgkit import PROJECT_ROOT
from opgkit.toolchain import coverage
from opgkit.toolchain.coverage_plugin import Tracer

PROBE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

contract Probe {
    uint256 public total;

    error TooLarge(uint256 value);

    constructor(uint256 start) {
        total = start;
    }

    function add(uint256 value) external {
        require(value < 100, TooLarge(value));
        if (value > 10) {
            total += value;
        }
        total += 1;
    }

    function pick(bool flag) external pure returns (uint256) {
        return flag ? 1 : 2;
    }

    function classify(uint256 value) external pure returns (uint256) {
        if (value == 0) {
            return 7;
        } else {
            return 9;
        }
    }

    function settle(uint256 price) external payable {
        _settle(price);
    }

    function _settle(uint256 price) private {
        total += 3;
        if (msg.value > price) payable(msg.sender).transfer(msg.value - price);
    }

    function neverCalled() external pure returns (uint256) {
        return 42;
    }
}

contract Caller {
    function forward(Probe probe, uint256 value) external {
        probe.add(value);
    }
}
"""
SOURCE = "contracts/Probe.sol"


def line_of(text: str) -> int:
    """The 1-based line of the first line of PROBE containing ``text``."""
    return next(n for n, line in enumerate(PROBE.splitlines(), 1) if text in line)


@pytest.fixture(scope="module")
def probe_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    shutil.copy(PROJECT_ROOT / "ape-config.yaml", root / "ape-config.yaml")
    (root / "contracts").mkdir()
    (root / SOURCE).write_text(PROBE)
    output = coverage.compile_for_coverage(root)
    return root, output, coverage.Catalog(output, root)


@pytest.fixture
def web3(chain):
    return chain.provider.web3


@pytest.fixture
def traced(probe_project, web3, accounts):
    """Deploy Probe and Caller, then return (tracer, send, call) helpers that trace what they run."""
    root, output, catalog = probe_project
    tracer = Tracer(catalog, HTTPProvider.make_request)
    provider = web3.provider
    sender = accounts[0].address

    def transact(data: str, to: str | None = None) -> dict:
        tx = {"from": sender, "data": data} | ({"to": to} if to else {})
        tx_hash = web3.eth.send_transaction(tx)
        receipt = web3.eth.wait_for_transaction_receipt(tx_hash)
        tracer.trace_transaction(provider, tx_hash.to_0x_hex())
        return receipt

    def call(to: str, data: str) -> None:
        tracer.trace_call(provider, {"from": sender, "to": to, "data": data}, "latest")

    probe_bytecode = output["contracts"][SOURCE]["Probe"]["evm"]["bytecode"]["object"]
    caller_bytecode = output["contracts"][SOURCE]["Caller"]["evm"]["bytecode"]["object"]
    start_arg = (5).to_bytes(32, "big").hex()
    probe = transact("0x" + probe_bytecode + start_arg)["contractAddress"]
    caller = transact("0x" + caller_bytecode)["contractAddress"]
    return tracer, transact, call, probe, caller, root, catalog


def selector(web3, signature: str) -> str:
    return web3.keccak(text=signature)[:4].hex()


def encode(web3, signature: str, *words: int | str) -> str:
    data = selector(web3, signature)
    for word in words:
        data += (int(word, 16) if isinstance(word, str) else word).to_bytes(32, "big").hex()
    return "0x" + data


def file_report(traced) -> tuple[dict, coverage.FileSummary]:
    tracer, *_, root, catalog = traced
    entry = coverage.istanbul_map(catalog, tracer.hits)[str(root / SOURCE)]
    return entry, coverage.summarize(entry)


def arms_of(entry: dict, line: int) -> list[int]:
    (key,) = [k for k, b in entry["branchMap"].items() if b["line"] == line]
    return entry["b"][key]


def function_count(entry: dict, name: str) -> int:
    (key,) = [k for k, f in entry["fnMap"].items() if f["name"] == name]
    return entry["f"][key]


def test_constructor_and_untouched_functions_are_told_apart(traced):
    entry, summary = file_report(traced)
    assert function_count(entry, "constructor") == 1
    assert function_count(entry, "neverCalled") == 0
    assert function_count(entry, "add") == 0
    assert line_of("return 42;") in summary.uncovered_lines
    assert line_of("total = start;") not in summary.uncovered_lines


def test_require_counts_passing_and_reverting_arms_separately(traced, web3):
    _, transact, call, probe, *_ = traced
    transact(encode(web3, "add(uint256)", 50), probe)
    entry, _ = file_report(traced)
    assert arms_of(entry, line_of("require(value < 100")) == [1, 0]

    call(probe, encode(web3, "add(uint256)", 500))  # reverts with TooLarge: traced as a call
    entry, _ = file_report(traced)
    assert arms_of(entry, line_of("require(value < 100")) == [1, 1]


def test_if_without_else_counts_the_skipped_body_as_its_else(traced, web3):
    _, transact, _, probe, *_ = traced
    transact(encode(web3, "add(uint256)", 50), probe)
    entry, summary = file_report(traced)
    assert arms_of(entry, line_of("if (value > 10)")) == [1, 0]
    assert line_of("total += value;") not in summary.uncovered_lines

    transact(encode(web3, "add(uint256)", 3), probe)
    entry, _ = file_report(traced)
    assert arms_of(entry, line_of("if (value > 10)")) == [1, 1]


def test_skipped_if_at_the_end_of_a_function_is_not_counted_as_run(traced, web3):
    # The optimizer labels the join point after the `if` with the body's range; it must not count as the body.
    _, transact, _, probe, *_ = traced
    transact(encode(web3, "settle(uint256)", 5), probe)  # pays nothing: no change to send back
    entry, _ = file_report(traced)
    assert arms_of(entry, line_of("if (msg.value > price)")) == [0, 1]
    assert function_count(entry, "_settle") == 1


def test_ternary_and_if_else_arms_follow_the_values_used(traced, web3):
    _, _, call, probe, *_ = traced
    call(probe, encode(web3, "pick(bool)", 1))
    call(probe, encode(web3, "classify(uint256)", 3))
    entry, summary = file_report(traced)
    assert arms_of(entry, line_of("return flag ? 1 : 2;")) == [1, 0]
    assert arms_of(entry, line_of("if (value == 0)")) == [0, 1]
    assert line_of("return 7;") in summary.uncovered_lines
    assert line_of("return 9;") not in summary.uncovered_lines


def test_code_reached_through_another_contract_is_attributed_to_the_callee(traced, web3):
    _, transact, _, probe, caller, *_ = traced
    transact(encode(web3, "forward(address,uint256)", probe, 20), caller)
    entry, summary = file_report(traced)
    assert function_count(entry, "forward") == 1
    assert function_count(entry, "add") == 1
    assert arms_of(entry, line_of("if (value > 10)")) == [1, 0]
    assert line_of("total += value;") not in summary.uncovered_lines


def test_reports_are_written_as_lcov_and_html(traced, web3, tmp_path):
    _, transact, _, probe, *_ = traced
    transact(encode(web3, "add(uint256)", 50), probe)
    tracer, *_, root, catalog = traced
    coverage.write_reports(coverage.istanbul_map(catalog, tracer.hits), tmp_path, root)
    lcov = (tmp_path / "lcov.info").read_text()
    assert f"SF:{SOURCE}\n" in lcov  # relative to the project
    assert f"DA:{line_of('return 42;')},0" in lcov
    assert f"BRDA:{line_of('require(value < 100')}," in lcov
    assert (tmp_path / "index.html").exists()


def test_uncovered_lines_are_printed_as_ranges():
    assert coverage.line_ranges([3, 4, 5, 9, 11, 12]) == "3-5,9,11-12"
    assert coverage.line_ranges([]) == ""


def test_hit_counts_survive_a_round_trip_through_json():
    hits = coverage.Hits()
    hits.ranges[(SOURCE, 10, 4)] = 3
    hits.arms[(SOURCE, 7, 1)] = 2
    hits.traces = 5
    again = coverage.Hits.from_json(hits.to_json())
    merged = coverage.Hits()
    merged.merge(again)
    merged.merge(again)
    assert merged.ranges[(SOURCE, 10, 4)] == 6 and merged.arms[(SOURCE, 7, 1)] == 4 and merged.traces == 10


def test_jump_labels_are_never_counted_as_executed_code(probe_project):
    # The optimizer may label the join point after a skipped `if` body with that body's range.
    _, _, catalog = probe_project
    for candidates in catalog._runtime.values():
        for template, _, info in candidates:
            assert info.ranges and all(template[pc] != 0x5B for pc in info.ranges)
