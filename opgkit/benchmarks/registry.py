"""Registry gas: register a model, register a TEE (2-of-3 attestors), heartbeat, revoke with 1 vs 100 TEEs."""

from __future__ import annotations

import hashlib

from ape import chain, project
from ape.utils import ZERO_ADDRESS
from eth_account import Account
from eth_utils import keccak

from opgkit.attestation import build_statement, quorum_evidence, sign_heartbeat
from opgkit.benchmarks import BLOCK_TIME, GasRow, gas_of
from opgkit.deploy import OPG, ProtocolParameters

NITRO = 1
TEE_ROLE_MASK = 2
MANY_TEES = 100
REVOKE_RATIO_LIMIT = 1.05
NO_ANCHOR = "no external anchor; tracked for regressions"
# Yardstick for recording one signed fact: two storage slots, one event and an ecrecover (py-evm, Prague).
RECORD_FLOOR = 74_929
RECORD_FLOOR_SOURCE = "yardstick for one signed record: 2 new slots + event + ecrecover"
ZERO32 = b"\x00" * 32
ATTESTORS = [Account.from_key(keccak(text=f"benchmark attestor {i}")) for i in range(3)]


def _measurement(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _deploy(deployer, operator):
    params = ProtocolParameters()
    token = deployer.deploy(project.OPGToken, deployer)
    staking = deployer.deploy(
        project.NodeStaking, token, deployer, deployer, list(params.minimum_stakes), params.unbonding_delay,
        params.reporter_reward_bps, params.jail_duration,
    )
    token.transfer(operator, 1_000_000 * OPG, sender=deployer)
    token.approve(staking, 2**256 - 1, sender=operator)
    staking.registerOperator(TEE_ROLE_MASK, params.minimum_stakes[1], 0, sender=operator)
    verifier = deployer.deploy(project.AttestorQuorumVerifier, deployer, [a.address for a in ATTESTORS], 2)
    tees = deployer.deploy(project.TEERegistry, staking, verifier, deployer, 3_600)
    tees.addTeeType(NITRO, "AWS Nitro", sender=deployer)
    return verifier, tees


def _register_tee(tees, verifier, operator, label: str, measurement: bytes):
    key = Account.from_key(keccak(text=f"benchmark tee {label}"))
    endpoint = f"https://{label}.tee.example"
    statement = build_statement(
        tees, operator=operator.address, tee_key=key.address, tee_type=NITRO, measurement=measurement,
        tls_cert_hash=keccak(text=label), payment_address=operator.address, endpoint=endpoint, expiry=2**40,
    )
    evidence = quorum_evidence(verifier, statement, ATTESTORS[:2])
    return key, lambda: tees.registerTee(statement.as_args(), endpoint, evidence, sender=operator)


def measure(deployer, test_accounts) -> list[GasRow]:
    operator = test_accounts[0]
    models = deployer.deploy(project.ModelRegistry)
    spec = (_measurement("model blob"), "ipfs://model", 2 * OPG, 3, 0, ZERO32, False, 0, ZERO_ADDRESS, ZERO32)
    rows = [GasRow("ModelRegistry", "register (root model)", gas_of(lambda: models.register(spec, sender=operator)), None, NO_ANCHOR)]

    verifier, tees = _deploy(deployer, operator)
    single, crowded = _measurement("enclave single"), _measurement("enclave crowded")
    tees.approveMeasurement(single, NITRO, 1, sender=deployer)
    tees.approveMeasurement(crowded, NITRO, 2, sender=deployer)

    key, register = _register_tee(tees, verifier, operator, "single-0", single)
    rows.append(GasRow("TEERegistry", "registerTee (2-of-3 attestors)", gas_of(register), None, NO_ANCHOR))
    stamp = chain.blocks.head.timestamp + BLOCK_TIME
    signature = sign_heartbeat(tees, key, stamp)
    heartbeat_gas = gas_of(lambda: tees.heartbeat(key.address, stamp, signature, sender=deployer))
    rows.append(GasRow("TEERegistry", "heartbeat (relayed)", heartbeat_gas, RECORD_FLOOR, RECORD_FLOOR_SOURCE))

    for i in range(MANY_TEES):
        _, register = _register_tee(tees, verifier, operator, f"crowded-{i}", crowded)
        register()
    revoke_one = gas_of(lambda: tees.revokeMeasurement(single, sender=deployer))
    revoke_many = gas_of(lambda: tees.revokeMeasurement(crowded, sender=deployer))
    rows.append(GasRow("TEERegistry", "revokeMeasurement (1 TEE on it)", revoke_one, None, NO_ANCHOR))
    rows.append(
        GasRow(
            "TEERegistry",
            f"revokeMeasurement ({MANY_TEES} TEEs on it)",
            revoke_many,
            revoke_one,
            f"revocation with 1 TEE; O(1) revocation must stay within ×{REVOKE_RATIO_LIMIT}",
        )
    )
    return rows
