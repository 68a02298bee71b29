"""The gas table renderer and the token benchmark, which `make gas` runs."""

import pytest

from opgkit.benchmarks import GasRow, registry, render_table, staking, token


def test_render_table__rows_given__one_line_each_with_delta():
    rows = [GasRow("T", "op", 110, 100, "ref"), GasRow("T", "new", 5, None, "none yet")]
    table = render_table(rows, "# Title\n")
    assert "| T | op | 110 | 100 | +10.0% | ref |" in table
    assert "| T | new | 5 | — | — | none yet |" in table
    assert table.startswith("# Title\n\n| contract |")


def test_token_benchmark__on_anvil__covers_each_operation_above_its_floor(networks, accounts):
    if networks.provider.name != "foundry":
        pytest.skip("gas figures are taken on anvil")
    rows = token.measure(accounts[0], accounts[1:])
    operations = {row.operation for row in rows}
    assert {"transfer (new holder)", "permit", "delegate (first, to self)", "delegateBySig (first)"} <= operations
    for row in rows:
        assert 21_000 < row.gas < 200_000
    by_op = {row.operation: row for row in rows}
    assert by_op["delegate (first, to self)"].gas >= token.DELEGATE_FLOOR


def test_staking_benchmark__slash__costs_the_same_for_1_and_50_delegators(networks, accounts):
    if networks.provider.name != "foundry":
        pytest.skip("gas figures are taken on anvil")
    rows = {row.operation: row for row in staking.measure(accounts[0], accounts[1:])}
    many = rows[f"slash ({staking.MANY_DELEGATORS} delegators)"]
    assert many.gas <= many.anchor * staking.SLASH_RATIO_LIMIT
    assert {"stake (delegate, first time)", "unbond", "withdraw", "claimRewards"} <= set(rows)


def test_registry_benchmark__revocation__costs_the_same_for_1_and_100_tees(networks, accounts):
    if networks.provider.name != "foundry":
        pytest.skip("gas figures are taken on anvil")
    rows = {row.operation: row for row in registry.measure(accounts[0], accounts[1:])}
    many = rows[f"revokeMeasurement ({registry.MANY_TEES} TEEs on it)"]
    assert many.gas <= many.anchor * registry.REVOKE_RATIO_LIMIT
    assert {"register (root model)", "registerTee (2-of-3 attestors)", "heartbeat (relayed)"} <= set(rows)
