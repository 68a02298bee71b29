"""The gas table renderer and the benchmarks `make gas` runs, with the ratio limits the issues set."""

import pytest

from opgkit.benchmarks import GasRow, registry, render_table, settlement, staking, token, twin, zkml


def test_render_table__rows_given__one_line_each_with_delta():
    rows = [GasRow("T", "op", 110, 100, "ref"), GasRow("T", "new", 5, None, "none yet")]
    table = render_table(rows, "# Title\n")
    assert "| T | op | 110 | 100 | +10.0% | ref |" in table
    assert "| T | new | 5 | — | — | none yet |" in table
    assert table.startswith("# Title\n\n| contract |")


@pytest.fixture
def anvil_rows(networks, accounts):
    """Factory: run one benchmark module on anvil and return its rows by operation."""
    if networks.provider.name != "foundry":
        pytest.skip("gas figures are taken on anvil")
    return lambda module: {row.operation: row for row in module.measure(accounts[0], accounts[1:])}


def test_token_benchmark__on_anvil__covers_each_operation_above_its_floor(anvil_rows):
    rows = anvil_rows(token)
    assert {"transfer (new holder)", "permit", "delegate (first, to self)", "delegateBySig (first)"} <= set(rows)
    assert all(21_000 < row.gas < 200_000 for row in rows.values())
    assert rows["delegate (first, to self)"].gas >= token.DELEGATE_FLOOR


@pytest.mark.parametrize(
    "module, operation, limit, others",
    [
        (staking, f"slash ({staking.MANY_DELEGATORS} delegators)", staking.SLASH_RATIO_LIMIT,
         {"stake (delegate, first time)", "unbond", "withdraw", "claimRewards"}),
        (registry, f"revokeMeasurement ({registry.MANY_TEES} TEEs on it)", registry.REVOKE_RATIO_LIMIT,
         {"register (root model)", "registerTee (2-of-3 attestors)", "heartbeat (relayed)"}),
    ],
    ids=["slash 1 vs 50 delegators", "revoke 1 vs 100 TEEs"],
)
def test_o1_operation__crowded_vs_single__within_ratio_limit(anvil_rows, module, operation, limit, others):
    rows = anvil_rows(module)
    crowded = rows[operation]
    assert crowded.gas <= crowded.anchor * limit
    assert others <= set(rows)


def test_twin_benchmark__trades__cost_no_more_than_friend_tech(anvil_rows):
    rows = anvil_rows(twin)
    for operation in twin.FRIEND_TECH:
        assert rows[operation].gas <= rows[operation].anchor, operation


def test_settlement_benchmark__batch_of_1024__at_most_100_gas_per_receipt(anvil_rows):
    rows = anvil_rows(settlement)
    per_receipt = [row for name, row in rows.items() if name.startswith("postBatch, per receipt at 1,024")]
    assert len(per_receipt) == 1 and per_receipt[0].gas <= settlement.PER_RECEIPT_TARGET
    assert {"settle (TEE, individual)", "settle (VANILLA, individual)", "challenge (bad signature; slashes the relayer)",
            "postPending (TEE)", "deliverProof (TEE signature)"} <= set(rows)
    long_history = rows[f"settle (TEE), {settlement.HEARTBEATS} heartbeats, receipt after the latest heartbeat"]
    assert long_history.gas <= long_history.anchor * settlement.HISTORY_RATIO_LIMIT


@pytest.mark.zkml
def test_zkml_benchmark__real_proof__verifier_near_its_anchor_and_overheads_reported(networks, accounts):
    if networks.provider.name != "foundry":
        pytest.skip("gas figures are taken on anvil")
    figures = zkml.measure(accounts[0], accounts[1:], proofs=1)
    assert abs(figures.verifier_gas - zkml.EZKL_VERIFIER_ANCHOR) <= zkml.EZKL_VERIFIER_ANCHOR * 0.05
    assert 0 < figures.overhead(zkml.DELIVER) < figures.overhead(zkml.SETTLE)
    assert figures.proof_bytes == 3_072 and figures.proving_key_bytes > 100 * 2**20
    table = zkml.render(figures, "# ZKML\n")
    assert f"| {zkml.DELIVER} | {figures.gas[3].gas:,} | {figures.overhead(zkml.DELIVER):+,} |" in table
    assert "| proving time (median of 1) |" in table
