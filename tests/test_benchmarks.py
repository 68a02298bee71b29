"""The gas table renderer and the benchmarks `make gas` runs, with the ratio limits the issues set."""

import pytest
from eth_abi import encode
from eth_utils import keccak

from opgkit.benchmarks import GasRow, registry, render_table, settlement, staking, token, twin, zkml
from opgkit.receipts import LEAF_TYPES, Mode, Receipt, sign_receipt
from opgkit.testing import reverts

# Gas measurements through ape on a node.
pytestmark = pytest.mark.anvil_only

RECEIPT_TYPEHASH = keccak(text="Receipt(bytes32 requestId,bytes32 modelId,bytes32 inputHash,bytes32 outputHash,"
                               "uint8 mode,address signer,uint64 timestamp,address payer,uint256 price)")


def test_render_table__rows_given__one_line_each_with_delta_and_target():
    rows = [GasRow("T", "op", 110, 100, "ref"), GasRow("T", "new", 5, None, "none yet"),
            GasRow("T", "met", 90, 100, "ref", target=90), GasRow("T", "missed", 91, 100, "ref", target=90)]
    table = render_table(rows, "# Title\n")
    assert "| T | op | 110 | 100 | +10.0% | — | ref |" in table
    assert "| T | new | 5 | — | — | — | none yet |" in table
    assert "| T | met | 90 | 100 | -10.0% | ≤ 90 met | ref |" in table
    assert "| T | missed | 91 | 100 | -9.0% | ≤ 90 **not met** | ref |" in table
    assert table.startswith("# Title\n\n| contract |")


@pytest.fixture(scope="module")
def anvil_rows(networks, accounts):
    """Factory: run one benchmark module on anvil (once per test module) and return its rows by operation."""
    if networks.provider.name != "foundry":
        pytest.skip("gas figures are taken on anvil")
    measured = {}

    def rows(module):
        if module not in measured:
            measured[module] = {row.operation: row for row in module.measure(accounts[0], accounts[1:])}
        return measured[module]

    return rows


def test_token_benchmark__on_anvil__covers_each_operation_above_its_floor(anvil_rows):
    rows = anvil_rows(token)
    assert {"transfer (new holder)", "permit", "delegate (first, to self)", "delegateBySig (first)"} <= set(rows)
    assert all(21_000 < row.gas < 200_000 for row in rows.values())
    assert rows["delegate (first, to self)"].gas >= token.DELEGATE_FLOOR


@pytest.mark.parametrize(
    "module, operation, limit, others",
    [
        (staking, f"slash ({staking.MANY_DELEGATORS} delegators)", staking.SLASH_RATIO_LIMIT,
         {"stake (delegate, first time)", staking.UNBOND_AGAIN, "withdraw", "claimRewards"}),
        (staking, f"slash ({staking.MANY_UNBONDINGS} unbonding entries)", staking.SLASH_RATIO_LIMIT, set()),
        (staking, f"applySlash ({staking.MANY_DELEGATORS} delegators)", staking.SLASH_RATIO_LIMIT, set()),
        (registry, f"revokeMeasurement ({registry.MANY_TEES} TEEs on it)", registry.REVOKE_RATIO_LIMIT,
         {"register (root model)", "registerTee (2-of-3 attestors)", "heartbeat (relayed)"}),
    ],
    ids=["slash 1 vs 50 delegators", "slash 1 vs 50 unbonding entries", "applySlash 1 vs 50 delegators",
         "revoke 1 vs 100 TEEs"],
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


def test_staking_benchmark__slash__meets_its_target_with_crowded_pools(anvil_rows):
    rows = anvil_rows(staking)
    for operation in ("slash (1 delegator)", f"slash ({staking.MANY_DELEGATORS} delegators)",
                      f"slash ({staking.MANY_UNBONDINGS} unbonding entries)"):
        assert rows[operation].target == staking.SLASH_TARGET and rows[operation].target_met, operation
    unbond = rows[staking.UNBOND_AGAIN]
    assert unbond.target == staking.UNBOND_TARGET and unbond.target_met, unbond.gas


# The settlement issue's targets met today: asserted as set.
SETTLEMENT_TARGETS_MET = {settlement.PER_RECEIPT_1024, settlement.CHALLENGE}
# Targets not met yet (the table says so): the figure measured when this was written plus about 2%, so a
# regression cannot pass unnoticed. Lower a bound when a change cuts the gas; move a row up once its target is met.
SETTLEMENT_REGRESSION_BOUNDS = {
    settlement.SETTLE_TEE: 102_500,  # 100,362 measured; target 80,000
    settlement.SETTLE_VANILLA: 77_500,  # 75,733 measured; target 70,000
    # 262,276 measured: the stakers' share now goes into the pool as the price is split (finding A8), and this is
    # the pool's first reward; the same payment again costs 193,912 (row below it in the table). Target 150,000.
    settlement.SETTLE_AND_PAY_TEE: 267_500,
}
# Every operation that writes a new record pays at least what the floor pays.
SETTLEMENT_RECORDING = (
    settlement.SETTLE_TEE, settlement.SETTLE_TEE_AUTHORIZED, settlement.SETTLE_VANILLA, settlement.SETTLE_ZKML,
    settlement.SETTLE_AND_PAY_TEE, settlement.CLAIM_FREE, settlement.CLAIM_HELD, settlement.POST_PENDING,
)


@pytest.fixture(scope="module")
def settlement_rows(networks, accounts):
    """The settlement benchmark, run once for the module (about 1,700 transactions)."""
    if networks.provider.name != "foundry":
        pytest.skip("gas figures are taken on anvil")
    return settlement.measure(accounts[0], accounts[1:])


def _row(rows, operation):
    """The row of ``operation``; a per-receipt batch row is named by its prefix (its figures follow it)."""
    found = [row for row in rows if row.operation == operation or row.operation.startswith(f"{operation} (")]
    assert len(found) == 1, operation
    return found[0]


def test_settlement_benchmark__targeted_rows__meet_their_target_or_their_regression_bound(settlement_rows):
    assert SETTLEMENT_TARGETS_MET | set(SETTLEMENT_REGRESSION_BOUNDS) == set(settlement.TARGETS)
    for operation in SETTLEMENT_TARGETS_MET:
        row = _row(settlement_rows, operation)
        assert row.target == settlement.TARGETS[operation] and row.target_met, (operation, row.gas)
    for operation, bound in SETTLEMENT_REGRESSION_BOUNDS.items():
        row = _row(settlement_rows, operation)
        assert row.target == settlement.TARGETS[operation] and row.gas <= bound, (operation, row.gas)


def test_settlement_benchmark__every_row__measured_against_the_floor_of_the_same_run(settlement_rows):
    floor = _row(settlement_rows, settlement.FLOOR)
    # Intrinsic gas, one new slot and an ecrecover are already 46,100.
    assert 21_000 + 22_100 + 3_000 < floor.gas < 70_000
    for operation in SETTLEMENT_RECORDING:
        row = _row(settlement_rows, operation)
        assert row.anchor == floor.gas and row.gas > floor.gas, operation
    informative = {settlement.CLAIM_FREE, settlement.CLAIM_HELD, settlement.RELEASE, settlement.POST_PENDING,
                   settlement.DELIVER, settlement.SETTLE_TEE_AUTHORIZED, settlement.SETTLE_ZKML}
    for operation in informative:
        assert _row(settlement_rows, operation).anchor == floor.gas, operation
    long_history = _row(settlement_rows,
                        f"settle (TEE), {settlement.HEARTBEATS} heartbeats, receipt after the latest heartbeat")
    assert long_history.anchor == _row(settlement_rows, settlement.SETTLE_TEE).gas
    assert long_history.gas <= long_history.anchor * settlement.HISTORY_RATIO_LIMIT


def test_benchmark_receipt_floor__records_a_signed_receipt_once_for_its_payer(project, deployer, accounts):
    payer, outsider = accounts[1], accounts[2]
    floor = deployer.deploy(project.BenchmarkReceiptFloor)
    r = Receipt(requestId=keccak(text="floor request"), modelId=keccak(text="floor model"),
                inputHash=keccak(text="floor input"), outputHash=keccak(text="floor output"), mode=Mode.TEE,
                signer=settlement.TEE_KEY.address, timestamp=1_700_000_000, payer=payer.address)
    signature = sign_receipt(floor, r, settlement.TEE_KEY.key)
    with reverts(floor.BenchmarkReceiptFloorBadSignature):
        floor.record(r.as_args(), sign_receipt(floor, r.with_changes(price=1), settlement.TEE_KEY.key), sender=payer)
    with reverts(floor.BenchmarkReceiptFloorNotPayer):
        floor.record(r.as_args(), signature, sender=outsider)

    tx = floor.record(r.as_args(), signature, sender=payer)

    assert floor.recordOf(payer, r.requestId) == keccak(encode(["bytes32"] + list(LEAF_TYPES[:-1]),
                                                               [RECEIPT_TYPEHASH, *r.as_args()]))
    assert [e.requestId for e in tx.events.filter(floor.ReceiptRecorded)] == [r.requestId]
    with reverts(floor.BenchmarkReceiptFloorAlreadyRecorded):
        floor.record(r.as_args(), signature, sender=payer)


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


def test_operators_benchmark__script__writes_the_table_from_a_real_run(uri, tmp_path):
    """`make bench-operators`'s script end to end, small: deploy, relayer intake and batching, watchtower check."""
    import subprocess

    from opgkit import PROJECT_ROOT

    output = tmp_path / "operators.md"
    result = subprocess.run(["ape", "run", "operators_bench", "--network", "ethereum:local:foundry", "--leaves", "16",
                             "--output", str(output)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    table = output.read_text()
    assert "| watchtower: fetch and verify one batch | 16 leaves |" in table and "| met |" in table
    assert "relayer: receipts accepted" in table and "relayer: receipts batched" in table
