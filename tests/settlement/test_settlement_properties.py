"""Stateful property test of settlement v2 (`InferenceSettlement` + `BatchSettlement`) with honest and adversarial
actors. Invariants: tests/INVARIANTS.md (InferenceSettlement and BatchSettlement: I1–I5, A1–A6, B1).

Honest: node N (inference node and TEE operator, runs the TEE key), relayer R, payers alice and bob (bob also
revokes his authorizations, withdraws escrow and allowance between claim and release), a challenger who reports
missed proofs, governance changing the batch receipt age limit, and the model owner deprecating a model.
Adversaries: a copycat relayer C (re-posts honest roots, posts forged and mixed batches, claims copies first), a
front-running node F (replays honest authorizations with its own receipts, posts ZKML results it cannot prove) and
a squatter S (tries to occupy requests in other payers' namespaces).

Every rule computes the outcome it expects. Transactions go to the chain as plain JSON-RPC (or straight to the
in-process chain, through the same small interface: `opgkit.inprocess.rpc`), and expected reverts
are checked with `eth_call` and decoded against the contracts' custom errors: the same calls for a fraction of the
client overhead, which keeps the ci profile within its time budget.
"""

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import pytest
from ape.utils import ZERO_ADDRESS
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from faster_eth_abi import decode, encode
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from opgkit.attestation import sign_heartbeat
from opgkit.receipts import (
    NO_AUTHORIZATION, Fault, Mode, PaymentAuthorization, ReceiptBatch, SignedReceipt, Status, zkml_evidence,
    zkml_proof_evidence,
)
from opgkit.inprocess.evm import Reverted
from opgkit.inprocess.rpc import json_rpc
from opgkit.testing import ChainStateMachine, ReadSchedule, advance
from opgkit.typed_data import domain_of
from settlement_helpers import (
    DAY, HOUR, INFERENCE_BIT, OPG, PRICE, RELAYER_BIT, TEE_BIT, receipt, zk_outputs, zk_receipt,
)

INFERENCE, TEE_NODE, RELAYER = 0, 1, 2  # NodeStaking.Role
MAX_UINT = 2**256 - 1
NEVER = 2**63  # an authorization deadline that never passes
MARGIN = 10  # no deadline may fall this close after "now": a transaction's exact block time then decides nothing
AGE_MARGIN = 600  # the honest relayer leaves out receipts this close to the age limit
HEARTBEAT_EVERY = 1_800
MIN_STEPS = 60  # the actors need room to interleave: the ci profile's 12 steps are raised to this floor
BPS = 10_000
RECEIPT_TYPEHASH = keccak(
    text="Receipt(bytes32 requestId,bytes32 modelId,bytes32 inputHash,bytes32 outputHash,uint8 mode,address signer,"
    "uint64 timestamp,address payer,uint256 price)")
PAYMENT_TYPEHASH = keccak(
    text="PaymentAuthorization(address payer,bytes32 requestId,address node,bytes32 modelId,bytes32 inputHash,"
    "uint8 mode,uint256 maxAmount,uint64 deadline,uint256 nonce)")
RECEIPT_TYPES = ["bytes32", "bytes32", "bytes32", "bytes32", "uint8", "address", "uint64", "address", "uint256"]
PAYMENT_TYPES = ["address", "bytes32", "address", "bytes32", "bytes32", "uint8", "uint256", "uint64", "uint256"]
POOL_TYPES = ["bool", "bool", "uint8", "uint16", "uint48", "uint48", "uint32", "uint256", "uint256", "uint256", "uint256",
              "uint256"]
# Forged leaves the copycat can put in a batch, each with the fault a challenge proves (F signs the model faults:
# SignerInactive comes first while F is jailed).
FORGERIES = {
    "bad-signature": Fault.BAD_SIGNATURE,
    "inactive-signer": Fault.SIGNER_INACTIVE,
    "unknown-tee": Fault.SIGNER_INACTIVE,
    "zkml": Fault.MODE_NOT_BATCHABLE,
    "mode": Fault.MODE_NOT_ACCEPTED,
    "unknown-model": Fault.UNKNOWN_MODEL,
    "future": Fault.TIMESTAMP_OUT_OF_BOUNDS,
}
MODEL_FAULTS = {Fault.MODE_NOT_ACCEPTED, Fault.UNKNOWN_MODEL}


# ---------------------------------------------------------------- chain access


def _normalize(abi_type, value):
    return to_checksum_address(value) if abi_type == "address" else value


class Abi:
    """Custom errors and events of the contracts under test, decoded from raw revert data and logs."""

    def __init__(self, contracts):
        self.errors, self.events = {}, {}
        for contract in contracts:
            for abi in contract.contract_type.errors:
                self.errors[keccak(text=abi.selector)[:4]] = (
                    abi.name, [i.canonical_type for i in abi.inputs], [i.name for i in abi.inputs])
            for abi in contract.contract_type.events:
                self.events[(contract.address.lower(), keccak(text=abi.selector))] = abi

    def error(self, data: bytes):
        if data[:4] not in self.errors:
            return f"<revert 0x{data.hex()}>", {}
        name, types, names = self.errors[data[:4]]
        values = decode(types, data[4:])
        return name, {n: _normalize(t, v) for n, t, v in zip(names, types, values)}

    def logs(self, receipt):
        events = []
        for log in receipt["logs"]:
            abi = self.events.get((log["address"].lower(), bytes.fromhex(log["topics"][0][2:])))
            if abi is None:
                continue
            topics = iter(log["topics"][1:])
            plain = [i for i in abi.inputs if not i.indexed]
            data = iter(decode([i.canonical_type for i in plain], bytes.fromhex(log["data"][2:])))
            values = {}
            for i in abi.inputs:
                value = decode([i.canonical_type], bytes.fromhex(next(topics)[2:]))[0] if i.indexed else next(data)
                values[i.name] = _normalize(i.canonical_type, value)
            events.append((abi.name, values))
        return events


def _fn(signature, *outputs):
    """A view called by raw selector: (selector, input types, output types)."""
    inputs = signature[signature.index("(") + 1:-1]
    return keccak(text=signature)[:4], tuple(inputs.split(",")) if inputs else (), tuple(outputs)


RECORD_OF = _fn("recordOf(address,bytes32)", "uint8", "uint8", "uint48", "bytes24")
CUSTODY_OF = _fn("custodyOf(address,bytes32)", "address", "uint96")
ESCROW_OF = _fn("escrowOf(address)", "uint256")
PROCEEDS_OF = _fn("proceedsOf(address)", "uint256")
REWARD_RESERVE = _fn("rewardReserve()", "uint256")
AUTHORIZATION_NONCE = _fn("authorizationNonce(address)", "uint256")
BALANCE_OF = _fn("balanceOf(address)", "uint256")
POOL = _fn("pool(address)", *POOL_TYPES)
SELF_BOND = _fn("selfBond(address)", "uint256")
SHARES_OF = _fn("sharesOf(address,address)", "uint256")
IS_ACTIVE_OPERATOR = _fn("isActiveOperator(address,uint8)", "bool")
WAS_ACTIVE_OPERATOR = _fn("wasActiveOperator(address,uint8,uint256)", "bool")
TEE_IS_ACTIVE = _fn("isActive(address,uint256)", "bool")
MAX_RECEIPT_AGE_AT = _fn("maxReceiptAgeAt(uint256)", "uint256")


# ---------------------------------------------------------------- model


@dataclass
class Record:
    """What the machine expects the settlement to hold for one `(payer, requestId)`."""

    receipt: object
    kind: str  # "final", "pending" (async, proof owed), "failed" (missed proof reported) or "batch"
    node: str  # who answers for it and is paid its node share
    batch: int = 0
    deadline: int = 0
    held: int = 0  # payment in the settlement's custody for this request
    proven: bool = False  # a ZKML proof of it verified
    paid: bool = False  # its price was split
    inputs: tuple = ()
    outputs: tuple = ()


@dataclass
class Posted:
    id: int
    relayer: str
    batch: ReceiptBatch
    posted_at: int
    deadline: int
    faults: dict = field(default_factory=dict)  # leaf index -> the fault a challenge proves
    rejected: bool = False


class SettlementMachine(ChainStateMachine):
    """Settlement v2 under honest and adversarial actors, with payments, challenges and time travel."""

    env = None

    def __init__(self):
        super().__init__()
        e = self.env
        self.rpc, self.abi, self.chain = e["rpc"], e["abi"], e["chain"]
        self.s, self.b, self.staking, self.token, self.tees = (
            e["settlement"], e["batches"], e["staking"], e["token"], e["tees"])
        self.open, self.zk, self.lane = e["open_model"], e["zk_model"], e["lane_model"]
        self.N, self.R, self.C, self.F, self.S = e["N"], e["R"], e["C"], e["F"], e["S"]
        self.tee_key = e["tee_key"]
        self.keys = e["keys"]
        self.payers, self.revoker = e["payers"], e["payers"][1]
        self.reporter, self.gov, self.carol, self.treasury = e["reporter"], e["gov"], e["carol"], e["treasury"]
        self.domain = e["domain_separator"]
        self.params = e["params"]
        self.counter = 0
        self.now = self.rpc.timestamp()
        self._snap = None

        self.recs = {}  # (payer, requestId) -> Record
        self.consented = set()  # keys whose payer signed an authorization or acted itself
        self.touched = set()  # every key any actor tried to record
        self.touched_reads = ReadSchedule(last_step=max(settings.default.stateful_step_count, MIN_STEPS))
        self.auths = {}  # key -> (authorization, signature): what the payer handed to its node (then public)
        self.posted = {}  # batch id -> Posted
        self.pool = []  # honest signed leaves not posted yet
        self.final_seen = {}  # key -> (receiptHash, settledAt) once read FINAL
        self.slashes_seen, self.faults = Counter(), Counter()
        self.withdrawn = Counter()
        self.paid_in = self.paid_out = 0
        self.max_age = self.previous_max_age = self.params["max_age"]
        self.lane_deprecated = False
        self.lane_deprecated_at = None
        self.last_beat = self.params["last_beat"]

        accounts = sorted({*self.payers, self.C, self.F, self.S, self.N, self.R, self.carol, self.treasury,
                           self.reporter, self.gov, ZERO_ADDRESS})
        self.accounts = accounts
        values = self._read([(self.s, ESCROW_OF, a) for a in accounts] + [(self.s, PROCEEDS_OF, a) for a in accounts]
                            + [(self.staking, REWARD_RESERVE)]
                            + [(self.token, BALANCE_OF, a) for a in [*self.payers, self.s.address]]
                            + [(self.s, AUTHORIZATION_NONCE, p) for p in self.payers]
                            + [(self.staking, POOL, self.R)])
        n = len(accounts)
        self.escrow = dict(zip(accounts, values[:n]))
        self.proceeds = dict(zip(accounts, values[n:2 * n]))
        # Stakers' shares leave the settlement for NodeStaking as each price is split: expected per node (model)
        # and seen in `RewardNotified` events sent by the settlement.
        self.staker_owed, self.staker_seen = Counter(), Counter()
        self.reward_reserve_before = values[2 * n]
        self.wallet = dict(zip(self.payers, values[2 * n + 1:2 * n + 3]))
        self.balance_before = values[2 * n + 3]
        self.nonce = dict(zip(self.payers, values[2 * n + 4:2 * n + 6]))
        self.relayer_stake = values[-1][7]
        self.allowance = {p: MAX_UINT for p in self.payers}
        self.spend_base = {p: self.wallet[p] + self.escrow[p] for p in self.payers}

    # ------------------------------------------------------------ chain access

    def _read(self, specs, sender=None):
        """Batched views: each spec is (contract, `_fn(...)`, *args)."""
        items = [(c.address, fn[0] + encode(fn[1], args)) for c, fn, *args in specs]
        values = []
        for (_, fn, *_), result in zip(specs, self.rpc.calls(items, sender)):
            if isinstance(result, Reverted):
                values.append(result)
                continue
            decoded = decode(fn[2], result)
            values.append(decoded[0] if len(decoded) == 1 else decoded)
        return values

    def _name(self, address):
        names = {self.N: "N", self.R: "R", self.C: "C", self.F: "F", self.S: "S", self.payers[0]: "alice",
                 self.payers[1]: "bob", self.reporter: "reporter", self.gov: "gov", self.carol: "carol"}
        return names.get(address, address)

    def _send(self, sender, contract, method, *args):
        """Send a transaction that must succeed; observe its events and return them."""
        data = getattr(contract, method).encode_input(*args)
        tx = self.rpc.send(sender, contract.address, data)
        if tx["status"] != "0x1":
            outcome = self.rpc.calls([(contract.address, data)], sender)[0]
            reason = self.abi.error(outcome.data) if isinstance(outcome, Reverted) else "no revert on replay"
            raise AssertionError(f"{method} by {self._name(sender)} reverted: {reason}")
        events = self.abi.logs(tx)
        self.now = self.rpc.timestamp()
        self._observe(events)
        return events

    def _reverts(self, error, sender, contract, method, *args, **fields):
        """The call must revert with the custom error `error` (and these argument values)."""
        data = getattr(contract, method).encode_input(*args)
        outcome = self.rpc.calls([(contract.address, data)], sender)[0]
        assert isinstance(outcome, Reverted), f"{method} by {self._name(sender)} succeeded; expected {error}"
        name, values = self.abi.error(outcome.data)
        assert name == error, f"{method} by {self._name(sender)} reverted {name}{values}; expected {error}"
        for key, value in fields.items():
            assert values[key] == value, f"{error}.{key} is {values[key]!r}, expected {value!r}"

    def _tick(self):
        """Start a step: the challenger watches forged batches, and no deadline falls within the next moments."""
        self._snap = None
        self._watch(self.rpc.timestamp() + 4 * MARGIN)
        for _ in range(5):
            self.now = self.rpc.timestamp()
            if not any(self.now <= d < self.now + MARGIN for d in self._deadlines()):
                return self.now
            self._advance(MARGIN)
        raise AssertionError("deadlines too dense to step between")

    def _deadlines(self):
        yield from (p.deadline for p in self.posted.values() if not p.rejected)
        yield from (rec.deadline for rec in self.recs.values() if rec.kind == "pending")
        yield from (auth.deadline for auth, _ in self.auths.values() if auth.deadline != NEVER)

    def _advance(self, seconds):
        self._watch(self.rpc.timestamp() + seconds + 4 * MARGIN)
        advance(self.chain, seconds)
        self.now = self.rpc.timestamp()

    def _watch(self, horizon):
        """A diligent challenger: every forged batch is challenged before its window could close."""
        for posted in self.posted.values():
            if posted.faults and not posted.rejected and posted.deadline < horizon:
                self._challenge_fault(posted, min(posted.faults))

    # ------------------------------------------------------------ signing (EIP-712 under the settlement's domain)

    def _digest(self, struct_hash):
        return keccak(b"\x19\x01" + self.domain + struct_hash)

    @staticmethod
    @lru_cache(maxsize=4096)
    def _receipt_hash(r):
        """EIP-712 struct hash of a receipt (receipts are frozen, so each is hashed once)."""
        return keccak(RECEIPT_TYPEHASH + encode(tuple(RECEIPT_TYPES), r.as_args()))

    def _sign(self, struct_hash, account):
        signed = Account.unsafe_sign_hash(self._digest(struct_hash), self.keys[account])
        return signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])

    def _sign_receipt(self, r, signer=None):
        return self._sign(self._receipt_hash(r), signer or r.signer)

    def _authorize(self, r, max_amount=None, deadline=NEVER):
        """The payer signs the authorization its node needs for `r` (the payer's consent to the record)."""
        payer = r.payer
        auth = PaymentAuthorization.for_receipt(r, deadline, node=self._node_of(r), max_amount=max_amount,
                                                nonce=self.nonce[payer])
        signature = self._sign_auth(auth, payer)
        key = (payer, r.requestId)
        self.auths[key] = (auth, signature)
        self.consented.add(key)
        self.touched.add(key)
        return auth, signature

    def _sign_auth(self, auth, signer):
        return self._sign(keccak(PAYMENT_TYPEHASH + encode(tuple(PAYMENT_TYPES), auth.as_args())), signer)

    # ------------------------------------------------------------ model helpers

    def _label(self, kind):
        self.counter += 1
        return f"machine {kind} {self.counter}"

    def _node_of(self, r):
        """Who answers for a receipt: the TEE's operator, or its signer."""
        if r.mode == Mode.TEE:
            return self.N if r.signer == self.tee_key.address else ZERO_ADDRESS
        return r.signer

    def _share(self, price):
        protocol, stakers, owner = self.params["split"]
        return price - price * protocol // BPS - price * stakers // BPS - price * owner // BPS

    def _status(self, rec, now):
        if rec.kind == "final":
            return Status.FINAL
        if rec.kind == "pending":
            return Status.PENDING if now <= rec.deadline else Status.FAILED
        if rec.kind == "failed":
            return Status.FAILED
        posted = self.posted[rec.batch]
        if posted.rejected:
            return Status.REJECTED
        return Status.PENDING if now <= posted.deadline else Status.FINAL

    def _charge(self, payer, price):
        """Model `_collect`: escrow first when it covers the price, else the wallet."""
        if self.escrow[payer] >= price:
            self.escrow[payer] -= price
        else:
            self.wallet[payer] -= price

    def _pay_error(self, payer, price):
        if price == 0 or self.escrow[payer] >= price:
            return None
        if payer not in self.allowance or self.allowance[payer] < price:
            return "ERC20InsufficientAllowance"
        return None if self.wallet[payer] >= price else "ERC20InsufficientBalance"

    def _split(self, rec, amount):
        """Model `_split`: treasury, stakers of the node, model owner (no royalties here), node."""
        protocol, stakers, owner = self.params["split"]
        self.proceeds[self.treasury] += amount * protocol // BPS
        self.staker_owed[rec.node] += amount * stakers // BPS
        self.proceeds[self.carol] += amount * owner // BPS
        self.proceeds[rec.node] += self._share(amount)
        rec.paid = True

    def _refund(self, payer, rec):
        self.escrow[payer] += rec.held
        rec.held = 0

    def _consent_error(self, caller, r, node, auth, signer):
        """Model `_requireConsent`: the first error it reverts with, or None."""
        if r.payer == ZERO_ADDRESS:
            return "InferenceSettlementZeroPayer"
        if caller == r.payer:
            return None
        if auth is None or (auth.payer, auth.requestId, auth.node, auth.modelId, auth.inputHash, auth.mode) != (
                r.payer, r.requestId, node, r.modelId, r.inputHash, r.mode):
            return "InferenceSettlementAuthorizationMismatch"
        if self.now > auth.deadline:
            return "InferenceSettlementAuthorizationExpired"
        if auth.nonce != self.nonce.get(r.payer, 0):
            return "InferenceSettlementStaleAuthorization"
        if r.price > auth.maxAmount:
            return "InferenceSettlementPriceAboveAuthorization"
        if signer != r.payer:
            return "InferenceSettlementBadAuthorizationSignature"
        return None

    def _claim_key_error(self, key):
        rec = self.recs.get(key)
        if rec is not None and self._status(rec, self.now) != Status.REJECTED:
            return "InferenceSettlementAlreadySettled"
        return None

    def _ready(self, operator, role):
        """Whether `operator` may act in `role` now; it unjails itself once its jail time is over."""
        (active, pool, bond), minimums = self._read([
            (self.staking, IS_ACTIVE_OPERATOR, operator, role), (self.staking, POOL, operator),
            (self.staking, SELF_BOND, operator)]), self.params["minimum"]
        if active:
            return True
        registered, jailed, roles, jailed_until = pool[0], pool[1], pool[2], pool[5]
        if not (registered and jailed and jailed_until <= self.now):
            return False
        if any(roles & (1 << i) and bond < minimums[i] for i in range(3)):
            if bond < minimums[INFERENCE] or operator != self.N:
                return False
            self._send(operator, self.staking, "setRoles", INFERENCE_BIT)  # give up what the bond no longer covers
        self._send(operator, self.staking, "unjail")
        return self._read([(self.staking, IS_ACTIVE_OPERATOR, operator, role)])[0]

    def _node_ready(self, mode):
        """The honest node answers only while it is active for the mode (and its TEE alive)."""
        if not self._ready(self.N, TEE_NODE if mode == Mode.TEE else INFERENCE):
            return False
        if mode != Mode.TEE:
            return True
        if self.now - self.last_beat > HEARTBEAT_EVERY:
            key = self.tee_key
            self._send(self.gov, self.tees, "heartbeat", key.address, self.now,
                       sign_heartbeat(self.tees, key, self.now))
            self.last_beat = self.now
        return self._read([(self.tees, TEE_IS_ACTIVE, self.tee_key.address, self.now)])[0]

    def _honest_receipt(self, mode, payer, priced, lane=False):
        """A receipt the honest node signs now: (receipt, inputs, outputs, evidence for individual settlement)."""
        label = self._label(f"{mode.name.lower()} request")
        price = PRICE if priced else 0
        if mode == Mode.ZKML:
            x = self.counter
            inputs = (x, x + 1, x + 2)
            r = zk_receipt(label, self.zk, self.N, self.now, inputs, payer=payer, price=price)
            outputs = tuple(zk_outputs(inputs))
            return r, inputs, outputs, zkml_evidence(self._sign_receipt(r), b"", inputs, outputs)
        signer = self.tee_key.address if mode == Mode.TEE else self.N
        r = receipt(label, self.lane if lane else self.open, signer, self.now, mode=mode, payer=payer, price=price)
        return r, (), (), self._sign_receipt(r)

    def _front_run(self, r, inputs, outputs, auth, auth_sig):
        """F answers the same request itself at the ceiling with the payer's authorization: it must fail."""
        mode = Mode.ZKML if r.mode == Mode.ZKML else Mode.VANILLA
        stolen = r.with_changes(signer=self.F, mode=mode, price=auth.maxAmount)
        signature = self._sign_receipt(stolen)
        evidence = zkml_evidence(signature, b"", inputs, outputs) if mode == Mode.ZKML else signature
        self._reverts("InferenceSettlementAuthorizationMismatch", self.F, self.s, "settleWithAuthorization",
                      stolen.as_args(), evidence, auth.as_args(), auth_sig, requestId=r.requestId)
        pending = stolen.with_changes(mode=Mode.ZKML)
        active = self._read([(self.staking, IS_ACTIVE_OPERATOR, self.F, INFERENCE)])[0]
        error = "InferenceSettlementAuthorizationMismatch" if active else "InferenceSettlementNotNode"
        self._reverts(error, self.F, self.s, "postPending", pending.as_args(), auth.as_args(), auth_sig)

    def _observe(self, events):
        created = set()
        delivered = {(v["payer"], v["requestId"]) for name, v in events if name == "ProofDelivered"}
        for name, v in events:
            if name in ("ReceiptSettled", "ProofRequested", "BatchReceiptRecorded"):
                key = (v["payer"], v["requestId"])
                if name == "ReceiptSettled" and key in delivered:
                    continue
                # I1: a request is recorded at most once, unless its batch was rejected.
                assert key not in created, f"request {key} recorded twice in one transaction"
                created.add(key)
                assert self._claim_key_error(key) is None, f"request {key} recorded again over a live record"
            elif name == "PaymentCharged":
                if not v["fromEscrow"]:
                    self.paid_in += v["amount"]
                key = (v["payer"], v["requestId"])
                if key in self.auths:  # never above the ceiling the payer signed
                    assert v["amount"] <= self.auths[key][0].maxAmount, f"{key}: charged above its authorization"
            elif name == "Deposited":
                self.paid_in += v["amount"]
            elif name in ("EscrowWithdrawn", "ProceedsWithdrawn"):
                self.paid_out += v["amount"]
            elif name == "RewardNotified" and v["from"] == self.s.address:
                self.paid_out += v["amount"]
                self.staker_seen[v["operator"]] += v["amount"]
            elif name == "Slashed":
                self.slashes_seen[v["operator"]] += 1

    # ------------------------------------------------------------ payers

    @rule(payer=st.integers(0, 1),
          action=st.sampled_from(["deposit", "withdraw", "revoke", "no-allowance", "allowance"]),
          amount=st.integers(1, 5 * OPG), fraction=st.integers(1, 100))
    def payer_acts(self, payer, action, amount, fraction):
        """Deposits and escrow withdrawals; bob, the revoking payer, also voids his authorizations and takes back
        the settlement's allowance on his wallet (between a claim and the release of its payment, say)."""
        self._tick()
        payer = self.payers[payer]
        if action == "deposit":
            if self.allowance[payer] < amount:
                self._reverts("ERC20InsufficientAllowance", payer, self.s, "deposit", amount)
                return
            self._send(payer, self.s, "deposit", amount)
            self.wallet[payer] -= amount
            self.escrow[payer] += amount
        elif action == "withdraw" and self.escrow[payer]:
            amount = max(1, self.escrow[payer] * fraction // 100)
            self._send(payer, self.s, "withdrawEscrow", amount)
            self.escrow[payer] -= amount
            self.wallet[payer] += amount
        elif action == "revoke":
            events = self._send(self.revoker, self.s, "revokeAuthorizations")
            self.nonce[self.revoker] += 1
            assert events[-1][1]["newNonce"] == self.nonce[self.revoker]
        elif action in ("no-allowance", "allowance"):
            allowance = MAX_UINT if action == "allowance" else 0
            self._send(self.revoker, self.token, "approve", self.s.address, allowance)
            self.allowance[self.revoker] = allowance

    # ------------------------------------------------------------ individual and asynchronous settlement

    @rule(payer=st.integers(0, 1), mode=st.sampled_from(Mode), priced=st.booleans(),
          via=st.sampled_from(["payer", "node", "anyone", "short"]))
    def settle_now(self, payer, mode, priced, via):
        """N answers; the payer settles, or N or anyone settles with the payer's authorization (F first tries to
        use that authorization for its own receipt); a ceiling below the price is refused."""
        self._tick()
        if not self._node_ready(mode):
            return
        payer = self.payers[payer]
        r, inputs, outputs, evidence = self._honest_receipt(mode, payer, priced)
        key = (payer, r.requestId)
        self.touched.add(key)
        if via == "payer":
            self.consented.add(key)
            method, args, sender = "settle", (r.as_args(), evidence), payer
        else:
            ceiling = r.price - 1 if via == "short" and priced else r.price + OPG
            auth, auth_sig = self._authorize(r, max_amount=ceiling)
            self._front_run(r, inputs, outputs, auth, auth_sig)
            method, args = "settleWithAuthorization", (r.as_args(), evidence, auth.as_args(), auth_sig)
            sender = self.N if via == "node" else self.S
            if ceiling < r.price:
                self._reverts("InferenceSettlementPriceAboveAuthorization", sender, self.s, method, *args)
                return
        pay_error = self._pay_error(payer, r.price)
        if pay_error:
            self._reverts(pay_error, sender, self.s, method, *args)
            return
        self._send(sender, self.s, method, *args)
        rec = Record(r, "final", self.N, proven=mode == Mode.ZKML)
        self.recs[key] = rec
        if r.price:
            self._charge(payer, r.price)
            self._split(rec, r.price)

    @rule(payer=st.integers(0, 1), kind=st.sampled_from(["tee", "zkml", "unprovable"]), priced=st.booleans(),
          short_auth=st.booleans())
    def post_pending(self, payer, kind, priced, short_auth):
        """N posts a TEE or ZKML result before its evidence (F first tries the payer's authorization); or F posts,
        in its own namespace, a ZKML result whose outputs no proof can bind."""
        self._tick()
        if kind == "unprovable":
            self._post_unprovable()
            return
        mode = Mode.TEE if kind == "tee" else Mode.ZKML
        if not self._node_ready(mode):
            return
        payer = self.payers[payer]
        r, inputs, outputs, _ = self._honest_receipt(mode, payer, priced)
        auth, auth_sig = self._authorize(r, deadline=self.now + HOUR if short_auth else NEVER)
        self._front_run(r, inputs, outputs, auth, auth_sig)
        args = (r.as_args(), auth.as_args(), auth_sig)
        # Evidence is judged at the receipt's second, so that second must be over before the result is posted.
        self._reverts("InferenceSettlementReceiptFromFuture", self.N, self.s, "postPending", *args)
        self._advance(1)
        pay_error = self._pay_error(payer, r.price)
        if pay_error:
            self._reverts(pay_error, self.N, self.s, "postPending", *args)
            return
        events = self._send(self.N, self.s, "postPending", *args)
        deadline = next(v["deadline"] for name, v in events if name == "ProofRequested")
        assert deadline == self.now + self.params["proof_window"]
        self.recs[(payer, r.requestId)] = Record(r, "pending", self.N, deadline=deadline, held=r.price,
                                                 inputs=inputs, outputs=outputs)
        if r.price:
            self._charge(payer, r.price)

    def _post_unprovable(self):
        if not self._ready(self.F, INFERENCE):
            return
        x = self.counter
        inputs = (x, x + 1, x + 2)
        outputs = tuple(y + 1 for y in zk_outputs(inputs))
        r = zk_receipt(self._label("unprovable"), self.zk, self.F, self.now, inputs, outputs=outputs, payer=self.F)
        key = (self.F, r.requestId)
        self.touched.add(key)
        self.consented.add(key)
        self._advance(1)
        events = self._send(self.F, self.s, "postPending", r.as_args(), NO_AUTHORIZATION, b"")
        deadline = next(v["deadline"] for name, v in events if name == "ProofRequested")
        self.recs[key] = Record(r, "pending", self.F, deadline=deadline, inputs=inputs, outputs=outputs)

    @precondition(lambda self: any(rec.kind in ("pending", "failed") for rec in self.recs.values()))
    @rule(pick=st.integers(0, 10**6), tamper=st.booleans())
    def resolve_pending(self, pick, tamper):
        """Before the deadline the evidence is delivered (by anyone, N jailed or not; S's wrong evidence first);
        after it the miss is reported once: one slash, the payment back to the payer's escrow."""
        self._tick()
        keys = sorted(k for k, rec in self.recs.items() if rec.kind in ("pending", "failed"))
        key = keys[pick % len(keys)]
        rec = self.recs[key]
        r = rec.receipt
        evidence = (zkml_proof_evidence(b"", rec.inputs, rec.outputs) if r.mode == Mode.ZKML
                    else self._sign_receipt(r))
        deliver = ("deliverProof", r.as_args(), evidence)
        if rec.kind == "failed":
            self._reverts("InferenceSettlementNotPending", self.reporter, self.s, "reportMissedProof", *key)
            self._reverts("InferenceSettlementNotPending", self.reporter, self.s, *deliver)
        elif self.now > rec.deadline:
            self._reverts("InferenceSettlementProofDeadlinePassed", self.reporter, self.s, *deliver,
                          deadline=rec.deadline)
            self._send(self.reporter, self.s, "reportMissedProof", *key)
            rec.kind = "failed"
            self._refund(key[0], rec)
            self.faults[rec.node] += 1
        else:
            self._reverts("InferenceSettlementProofNotDue", self.reporter, self.s, "reportMissedProof", *key)
            if rec.node == self.F:  # A4: the claimed outputs never verify
                self._reverts("InferenceSettlementProofRejected", self.reporter, self.s, *deliver)
                return
            if tamper and r.mode == Mode.ZKML:
                wrong = zkml_proof_evidence(b"", rec.inputs, [y + 1 for y in rec.outputs])
                self._reverts("InferenceSettlementOutputNotBound", self.S, self.s, "deliverProof", r.as_args(), wrong)
            elif tamper:
                wrong = self._sign_receipt(r, self.S)
                self._reverts("InferenceSettlementBadSignature", self.S, self.s, "deliverProof", r.as_args(), wrong)
            self._send(self.reporter, self.s, *deliver)  # A6: lands even while N is jailed
            rec.kind, rec.proven = "final", r.mode == Mode.ZKML
            if rec.held:
                self._split(rec, rec.held)
                rec.held = 0

    @precondition(lambda self: self.recs)
    @rule(pick=st.integers(0, 10**6))
    def replay_recorded(self, pick):
        """A recorded request cannot be recorded again, not even by its payer, unless its batch was rejected."""
        self._tick()
        keys = sorted(k for k, rec in self.recs.items() if self._status(rec, self.now) != Status.REJECTED)
        if not keys:
            return
        payer, request = keys[pick % len(keys)]
        r = receipt(self._label("replay"), self.open, self.N, self.now, payer=payer).with_changes(requestId=request)
        self._reverts("InferenceSettlementAlreadySettled", payer, self.s, "settle", r.as_args(), self._sign_receipt(r),
                      payer=payer, requestId=request)

    # ------------------------------------------------------------ batches

    @rule(fresh=st.lists(st.tuples(st.sampled_from([Mode.VANILLA, Mode.TEE]), st.integers(0, 1), st.booleans(),
                                   st.booleans(), st.booleans()), max_size=3),
          copy_first=st.booleans(), keep=st.integers(0, 2))
    def post_honest_batch(self, fresh, copy_first, keep):
        """N answers requests; R batches the leaves still valid (some signed steps ago), keeping a few for later;
        C may copy the root first."""
        self._tick()
        for mode, payer, priced, lane, short_auth in fresh:
            if lane and self.lane_deprecated or not self._node_ready(mode):
                continue
            r, _, _, signature = self._honest_receipt(mode, self.payers[payer], priced, lane)
            self._authorize(r, deadline=self.now + HOUR if short_auth else NEVER)
            self.pool.append(SignedReceipt(r, signature))
        if not self.pool or not self._ready(self.R, RELAYER):
            return
        if max(item.receipt.timestamp for item in self.pool) >= self.now:
            self._advance(1)  # a batch carries receipts strictly older than its posting
        valid = self._still_valid(self.pool)
        cut = max(1, len(valid) - keep)
        chosen, self.pool = valid[:cut], valid[cut:]  # invalid leaves are dropped for good
        if not chosen:
            return
        batch = ReceiptBatch(chosen)
        if copy_first and self._ready(self.C, RELAYER):
            self._post(self.C, batch, {})
        self._post(self.R, batch, {})

    def _still_valid(self, leaves):
        """The honest relayer's check before posting: age within the limit (the lower of the last two, as a change
        in the posting's own second does not count), model not deprecated before the receipt, and the signer active
        at the receipt's timestamp (already history: that second is over)."""
        specs, candidates = [], []
        max_age = min(self.max_age, self.previous_max_age) - AGE_MARGIN
        for item in leaves:
            r = item.receipt
            deprecated = r.modelId == self.lane and self.lane_deprecated and self.lane_deprecated_at < r.timestamp
            if self.now - r.timestamp > max_age or deprecated:
                continue
            candidates.append(item)
            specs.append((self.tees, TEE_IS_ACTIVE, r.signer, r.timestamp) if r.mode == Mode.TEE
                         else (self.staking, WAS_ACTIVE_OPERATOR, r.signer, INFERENCE, r.timestamp))
        return [item for item, active in zip(candidates, self._read(specs)) if active]

    def _post(self, relayer, batch, faults):
        events = self._send(relayer, self.b, "postBatch", batch.root, len(batch), "")
        batch_id = next(v["batchId"] for name, v in events if name == "BatchPosted")
        self.posted[batch_id] = Posted(batch_id, relayer, batch, self.now, self.now + self.params["challenge_window"],
                                       faults)
        return batch_id

    @rule(forgeries=st.lists(st.sampled_from(sorted(FORGERIES)), max_size=2), copies=st.integers(0, 2),
          victim=st.sampled_from([None, 0, 1]), pick=st.integers(0, 10**6))
    def copycat(self, forgeries, copies, victim, pick):
        """C re-posts an honest root, or posts forged leaves (for itself or naming a victim payer) mixed with
        copies of honest leaves."""
        self._tick()
        if not self._ready(self.C, RELAYER):
            return
        if not forgeries:
            honest = sorted(i for i, p in self.posted.items() if p.relayer == self.R)
            if honest:
                # A late copy is judged at its own posting: leaves that have grown too old are its faults.
                copy = self.posted[self._post(self.C, self.posted[honest[pick % len(honest)]].batch, {})]
                limit = self._read([(self.b, MAX_RECEIPT_AGE_AT, copy.posted_at)])[0]
                copy.faults = {i: Fault.TIMESTAMP_OUT_OF_BOUNDS for i, item in enumerate(copy.batch.signed)
                               if copy.posted_at - item.receipt.timestamp > limit}
            return
        payer = self.C if victim is None else self.payers[victim]
        leaves = [self._forge(kind, payer) for kind in forgeries]
        for item in leaves:
            self.touched.add((payer, item.receipt.requestId))
        self._advance(1)
        faults = dict(enumerate(FORGERIES[kind] for kind in forgeries))
        for index, item in enumerate(leaves):
            if faults[index] in MODEL_FAULTS and not self._read([
                    (self.staking, WAS_ACTIVE_OPERATOR, self.F, INFERENCE, item.receipt.timestamp)])[0]:
                faults[index] = Fault.SIGNER_INACTIVE
        if copies:
            honest = [item for p in self.posted.values() if p.relayer == self.R for item in p.batch.signed]
            leaves += self._still_valid((honest + self.pool)[-copies:])
        self._post(self.C, ReceiptBatch(leaves), faults)

    def _forge(self, kind, payer):
        label = self._label(f"forged {kind}")
        if kind == "zkml":  # properly signed, never proven
            r = zk_receipt(label, self.zk, self.F, self.now, [1, 2, 3], payer=payer)
            return SignedReceipt(r, self._sign_receipt(r))
        model = {"mode": self.zk, "unknown-model": keccak(text=label)}.get(kind, self.open)
        signer = {"bad-signature": self.N, "inactive-signer": self.S}.get(kind, self.F)
        mode, timestamp = Mode.VANILLA, self.now + (5_000 if kind == "future" else 0)
        if kind == "unknown-tee":
            stranger = Account.from_key(keccak(text=label))
            self.keys[stranger.address] = stranger.key
            signer, mode = stranger.address, Mode.TEE
        r = receipt(label, model, signer, timestamp, mode=mode, payer=payer)
        return SignedReceipt(r, self._sign_receipt(r, self.C if kind == "bad-signature" else signer))

    @precondition(lambda self: self.posted)
    @rule(pick=st.integers(0, 10**6), leaf=st.integers(0, 7),
          claimer=st.sampled_from(["payer", "node", "copycat", "squatter"]), unclaimed=st.booleans())
    def claim_leaf(self, pick, leaf, claimer, unclaimed):
        """A leaf (any, or one whose request nobody recorded yet) is claimed by its payer, by N or C with the
        payer's authorization (C through its copies first, or with one for another request), or by S with an
        authorization of its own making."""
        self._tick()
        candidates = [(batch_id, index) for batch_id, posted in sorted(self.posted.items()) if not posted.rejected
                      for index, item in enumerate(posted.batch.signed)
                      if unclaimed and self._claim_key_error((item.receipt.payer, item.receipt.requestId)) is None]
        if candidates:
            batch_id, index = candidates[pick % len(candidates)]
        else:
            batch_id = sorted(self.posted)[pick % len(self.posted)]
            index = leaf % len(self.posted[batch_id].batch)
        posted = self.posted[batch_id]
        r = posted.batch.signed[index].receipt
        key = (r.payer, r.requestId)
        caller = {"payer": r.payer, "node": self.N, "copycat": self.C, "squatter": self.S}[claimer]
        if claimer == "payer" and r.payer in self.payers and key not in self.auths:
            return  # an honest payer claims only the requests it made
        self.touched.add(key)
        if caller == r.payer:
            self.consented.add(key)
        if claimer == "squatter":
            auth = PaymentAuthorization.for_receipt(r, NEVER, node=self._node_of(r), nonce=self.nonce.get(r.payer, 0))
            auth_sig, signer = self._sign_auth(auth, self.S), self.S
        elif key in self.auths:  # the payer's, as handed to its node (then public)
            (auth, auth_sig), signer = self.auths[key], r.payer
        elif claimer == "copycat" and any(k[0] == r.payer for k in self.auths):  # one for another request
            (auth, auth_sig), signer = self.auths[max(k for k in self.auths if k[0] == r.payer)], r.payer
        else:
            auth, auth_sig, signer = None, b"", None
        args = (batch_id, posted.batch.leaf(index), auth.as_args() if auth else NO_AUTHORIZATION, auth_sig)
        error = self._claim_error(posted, index, caller, auth, signer)
        if error:
            self._reverts(error, caller, self.b, "claimBatchReceipt", *args)
            return
        self._send(caller, self.b, "claimBatchReceipt", *args)
        previous = self.recs.get(key)
        if previous is not None and previous.held:
            self._refund(r.payer, previous)
        rec = Record(r, "batch", self._node_of(r), batch=batch_id)
        self.recs[key] = rec
        if r.price:
            self._charge(r.payer, r.price)
            if self._status(rec, self.now) == Status.PENDING:
                rec.held = r.price
            else:
                self._split(rec, r.price)

    def _claim_error(self, posted, index, caller, auth, signer):
        """Model `claimBatchReceipt`: the first error it reverts with, or None."""
        r = posted.batch.signed[index].receipt
        if posted.rejected:
            return "BatchSettlementBatchRejected"
        fault = posted.faults.get(index, Fault.NONE)  # every fault is checked at claim, challenged or not
        if fault == Fault.BAD_SIGNATURE:
            return "BatchSettlementBadSignature"
        if fault not in (Fault.NONE, Fault.MODE_NOT_BATCHABLE):
            return "BatchSettlementFaultyLeaf"
        if r.mode == Mode.ZKML:
            return "InferenceSettlementModeNotBatchable"
        node = self._node_of(r)
        if node == ZERO_ADDRESS:
            return "InferenceSettlementUnknownSigner"
        error = self._consent_error(caller, r, node, auth, signer) or self._claim_key_error((r.payer, r.requestId))
        if error:
            return error
        previous = self.recs.get((r.payer, r.requestId))
        refund = previous.held if previous is not None else 0
        self.escrow[r.payer] += refund  # a rejected record's held payment goes back to escrow first
        error = self._pay_error(r.payer, r.price)
        self.escrow[r.payer] -= refund
        return error

    @precondition(lambda self: self.posted)
    @rule(pick=st.integers(0, 10**6), leaf=st.integers(0, 7))
    def challenge(self, pick, leaf):
        """Every honest leaf of the batch is challenged and has no fault; then a faulty leaf, if any."""
        self._tick()
        batch_id = sorted(self.posted)[pick % len(self.posted)]
        posted = self.posted[batch_id]
        index = leaf % len(posted.batch)
        if posted.rejected:
            self._reverts("BatchSettlementBatchRejected", self.reporter, self.b, "challenge", batch_id,
                          posted.batch.leaf(index))
            return
        if self.now > posted.deadline:
            self._reverts("BatchSettlementChallengeWindowClosed", self.reporter, self.b, "challenge", batch_id,
                          posted.batch.leaf(index))
            return
        data = [(self.b.address, self.b.challenge.encode_input(batch_id, posted.batch.leaf(i)))
                for i in range(len(posted.batch)) if i not in posted.faults]
        for result in self.rpc.calls(data, self.reporter):  # A1
            assert isinstance(result, Reverted), f"an honest leaf of batch {batch_id} was proven faulty"
            name, _ = self.abi.error(result.data)
            assert name == "BatchSettlementNoFault", f"challenging an honest leaf reverted {name}"
        if posted.faults:
            faulty = sorted(posted.faults)
            self._challenge_fault(posted, faulty[index % len(faulty)])

    def _challenge_fault(self, posted, index):
        events = self._send(self.reporter, self.b, "challenge", posted.id, posted.batch.leaf(index))
        fault = next(v["fault"] for name, v in events if name == "BatchChallenged")
        assert fault == posted.faults[index], f"challenge proved {Fault(fault)!r}, expected {posted.faults[index]!r}"
        posted.rejected = True
        self.faults[posted.relayer] += 1

    @precondition(lambda self: any(rec.kind == "batch" for rec in self.recs.values()))
    @rule(pick=st.integers(0, 10**6))
    def release_batch_payment(self, pick):
        self._tick()
        keys = sorted(k for k, rec in self.recs.items() if rec.kind == "batch")
        key = keys[pick % len(keys)]
        rec = self.recs[key]
        r = rec.receipt
        status = self._status(rec, self.now)
        if not rec.held:
            self._reverts("InferenceSettlementNothingHeld", self.S, self.s, "releaseBatchPayment", r.as_args())
        elif status == Status.PENDING:
            self._reverts("InferenceSettlementBatchNotFinal", self.S, self.s, "releaseBatchPayment", r.as_args(),
                          batchId=rec.batch)
        else:
            self._send(self.S, self.s, "releaseBatchPayment", r.as_args())
            if status == Status.FINAL:
                self._split(rec, rec.held)
                rec.held = 0
            else:
                self._refund(key[0], rec)

    # ------------------------------------------------------------ squatter

    @rule(victim=st.integers(0, 1), how=st.sampled_from(["settle", "made-up", "copied", "other-request", "pending"]),
          known=st.booleans())
    def squat(self, victim, how, known):
        """S (or F, as a node) tries to record a request in another payer's namespace: a request the payer made or
        one it has not made yet."""
        self._tick()
        payer = self.payers[victim]
        theirs = sorted(k for k in self.auths if k[0] == payer)
        copied = self.auths[theirs[self.counter % len(theirs)]] if theirs else None
        request = copied[0].requestId if known and copied else keccak(text=self._label("squatted"))
        r = receipt(self._label("squat"), self.open, self.F, self.now, payer=payer).with_changes(requestId=request)
        signature = self._sign_receipt(r)
        self.touched.add((payer, request))
        if how == "settle":
            self._reverts("InferenceSettlementNotPayer", self.S, self.s, "settle", r.as_args(), signature,
                          caller=self.S, payer=payer)
        elif how == "made-up":
            auth = PaymentAuthorization.for_receipt(r, NEVER, nonce=self.nonce[payer])
            self._reverts("InferenceSettlementBadAuthorizationSignature", self.S, self.s, "settleWithAuthorization",
                          r.as_args(), signature, auth.as_args(), self._sign_auth(auth, self.S), payer=payer)
        elif how in ("copied", "other-request") and copied:
            if how == "other-request":
                r = r.with_changes(requestId=keccak(text=self._label("squatted")))
                self.touched.add((payer, r.requestId))
            self._reverts("InferenceSettlementAuthorizationMismatch", self.S, self.s, "settleWithAuthorization",
                          r.as_args(), self._sign_receipt(r), copied[0].as_args(), copied[1])
        elif how == "pending":
            pending = r.with_changes(mode=Mode.ZKML)
            auth = PaymentAuthorization.for_receipt(pending, NEVER, nonce=self.nonce[payer])
            active = self._read([(self.staking, IS_ACTIVE_OPERATOR, self.F, INFERENCE)])[0]
            error = "InferenceSettlementBadAuthorizationSignature" if active else "InferenceSettlementNotNode"
            self._reverts(error, self.F, self.s, "postPending", pending.as_args(), auth.as_args(),
                          self._sign_auth(auth, self.F))

    # ------------------------------------------------------------ later changes that must not hurt honest batches

    @rule(action=st.sampled_from(["unbond", "restake", "drop-tee", "restore-roles", "receipt-age", "deprecate"]),
          fraction=st.integers(5, 95), max_age=st.sampled_from([HOUR, 6 * HOUR, DAY]))
    def later_changes(self, action, fraction, max_age):
        """N unbonds, stakes again or changes roles; governance changes the batch receipt age limit; the model
        owner deprecates a model. Batches already posted keep their validity."""
        self._tick()
        (pool, bond, shares, wallet), minimums = self._read([
            (self.staking, POOL, self.N), (self.staking, SELF_BOND, self.N),
            (self.staking, SHARES_OF, self.N, self.N), (self.token, BALANCE_OF, self.N)]), self.params["minimum"]
        jailed, roles = pool[1], pool[2]
        if action == "unbond" and shares:
            self._send(self.N, self.staking, "unbond", self.N, max(1, shares * fraction // 100))
        elif action == "restake" and not jailed and wallet >= 40_000 * OPG:  # N's wallet runs dry in long runs
            self._send(self.N, self.staking, "stake", self.N, 40_000 * OPG)
        elif action == "drop-tee" and roles != INFERENCE_BIT and bond >= minimums[INFERENCE]:
            self._send(self.N, self.staking, "setRoles", INFERENCE_BIT)
        elif action == "restore-roles" and bond >= minimums[TEE_NODE]:
            self._send(self.N, self.staking, "setRoles", INFERENCE_BIT | TEE_BIT)
        elif action == "receipt-age":
            self._send(self.gov, self.b, "setMaxReceiptAge", max_age)
            self.previous_max_age, self.max_age = self.max_age, max_age
        elif action == "deprecate" and not self.lane_deprecated:
            self._send(self.carol, self.env["models"], "deprecate", self.lane)
            self.lane_deprecated, self.lane_deprecated_at = True, self.now

    # ------------------------------------------------------------ time, proceeds

    @rule(seconds=st.sampled_from([30, 1_800, 3_700, 90_000]))
    def advance_time(self, seconds):
        self._tick()
        self._advance(seconds)

    @rule(who=st.sampled_from(["N", "carol", "treasury"]))
    def payouts(self, who):
        self._tick()
        account = {"N": self.N, "carol": self.carol, "treasury": self.treasury}[who]
        if self.proceeds[account]:
            self._send(account, self.s, "withdrawProceeds")
            self.withdrawn[account] += self.proceeds[account]
            self.proceeds[account] = 0

    # ------------------------------------------------------------ invariants

    def _view(self):
        """Everything the invariants read, in one batch of calls on the latest block."""
        if self._snap is not None:
            return self._snap
        now = self.rpc.timestamp()
        # Records are read every step; requests only touched (which must stay unrecorded, A5) on a schedule.
        keys = sorted(set(self.recs) | set(self.touched_reads.due(sorted(self.touched - set(self.recs)))))
        specs = ([(self.s, RECORD_OF, *k) for k in keys] + [(self.s, CUSTODY_OF, *k) for k in self.recs]
                 + [(self.s, ESCROW_OF, a) for a in self.accounts] + [(self.s, PROCEEDS_OF, a) for a in self.accounts]
                 + [(self.staking, REWARD_RESERVE)]
                 + [(self.token, BALANCE_OF, a) for a in [*self.payers, self.s.address]]
                 + [(self.staking, POOL, a) for a in (self.R, self.C, self.N, self.F)])
        values = iter(self._read(specs))
        snap = dict(now=now, records={k: next(values) for k in keys}, custody={k: next(values) for k in self.recs})
        for name in ("escrow", "proceeds"):
            snap[name] = {a: next(values) for a in self.accounts}
        snap["reward_reserve"] = next(values)
        snap["wallet"] = {p: next(values) for p in self.payers}
        snap["balance"] = next(values)
        snap["pools"] = {a: next(values) for a in (self.R, self.C, self.N, self.F)}
        # `requireVerifiedReceipt(r, its mode, mustBeFinal)` for rejected batch records and ZKML records.
        verify = [(k, rec.receipt) for k, rec in self.recs.items()
                  if rec.kind == "batch" and self.posted[rec.batch].rejected or rec.receipt.mode == Mode.ZKML]
        data = [(self.s.address, self.s.requireVerifiedReceipt.encode_input(r.as_args(), int(r.mode), True))
                for _, r in verify]
        results = self.rpc.calls(data)
        snap["verified"] = {k: not isinstance(result, Reverted) for (k, _), result in zip(verify, results)}
        self._snap = snap
        return snap

    @invariant()
    def records_match_the_model(self):
        """I2, I3: every record is the model's (status, mode, receipt hash, custody); FINAL is terminal; a rejected
        batch's record is never verified."""
        snap = self._view()
        for key, rec in self.recs.items():
            status, mode, settled_at, recorded = snap["records"][key]
            expected = self._status(rec, snap["now"])
            assert status == expected, f"{key}: status {Status(status)!r}, expected {expected!r}"
            assert mode == rec.receipt.mode and recorded == self._receipt_hash(rec.receipt)[:24]
            assert snap["custody"][key][1] == rec.held, f"{key}: custody {snap['custody'][key]} != held {rec.held}"
            if status == Status.FINAL:
                assert self.final_seen.setdefault(key, (recorded, settled_at)) == (recorded, settled_at)
            if rec.kind == "batch" and self.posted[rec.batch].rejected:
                assert not snap["verified"][key], f"{key}: a rejected batch's receipt reads verified"
        for key in self.final_seen:
            assert snap["records"][key][0] == Status.FINAL, f"{key}: FINAL changed to {snap['records'][key][0]}"

    @invariant()
    def a1_honest_relayer_never_slashed(self):
        """A1: R is never slashed nor jailed and its stake never moves (R takes no action of its own but posting);
        every challenge of its leaves reverted `BatchSettlementNoFault` (`challenge` rule)."""
        snap = self._view()
        pool = snap["pools"][self.R]
        assert not pool[1] and pool[7] == self.relayer_stake, "the honest relayer was slashed or jailed"
        assert self.slashes_seen[self.R] == 0 and self.faults[self.R] == 0
        assert not any(p.rejected for p in self.posted.values() if p.relayer == self.R)

    @invariant()
    def a2_honest_node_paid_for_every_final_priced_receipt(self):
        """A2: N's proceeds (with what it withdrew) are the node share of its paid records; a paid record is FINAL
        and a FINAL priced record not yet paid has its whole price in custody for `releaseBatchPayment`."""
        snap = self._view()
        earned = 0
        for key, rec in self.recs.items():
            if rec.node != self.N or not rec.receipt.price:
                continue
            status = snap["records"][key][0]
            if rec.paid:
                assert status == Status.FINAL, f"{key}: paid but {Status(status)!r}"
                earned += self._share(rec.receipt.price)
            elif status == Status.FINAL:
                # A final batch leaf whose payment waits for `releaseBatchPayment` (anyone may call it).
                assert snap["custody"][key][1] == rec.receipt.price, f"{key}: FINAL, priced, neither paid nor held"
        assert snap["proceeds"][self.N] + self.withdrawn[self.N] == earned
        assert snap["proceeds"][self.F] == 0 and self.staker_seen[self.F] == 0, "the front-runner was paid"

    @invariant()
    def a3_payer_pays_at_most_the_signed_price(self):
        """A3: a payer's wallet and escrow outflow is the price of its FINAL records plus what is held for the
        others (refunds come back to escrow)."""
        snap = self._view()
        for payer in self.payers:
            spent = self.spend_base[payer] - snap["wallet"][payer] - snap["escrow"][payer]
            owed = 0
            for key, rec in self.recs.items():
                if key[0] != payer:
                    continue
                owed += rec.receipt.price if snap["records"][key][0] == Status.FINAL else snap["custody"][key][1]
            assert spent == owed, f"{self._name(payer)} spent {spent}, its FINAL or held records cost {owed}"
            assert (snap["wallet"][payer], snap["escrow"][payer]) == (self.wallet[payer], self.escrow[payer])

    @invariant()
    def a4_zkml_only_when_proven(self):
        """A4: no batch record is ZKML; a ZKML record is FINAL, and verified, only when its proof verified;
        otherwise its proof is owed (PENDING) or was missed (FAILED)."""
        snap = self._view()
        for key, rec in self.recs.items():
            status, mode = snap["records"][key][:2]
            if rec.kind == "batch":
                assert mode != Mode.ZKML, f"{key}: a batch record reads ZKML"
            if mode == Mode.ZKML:
                assert rec.proven or status in (Status.PENDING, Status.FAILED), f"{key}: unproven ZKML {status}"
                assert snap["verified"][key] == (rec.proven and status == Status.FINAL)

    @invariant()
    def a5_no_record_without_consent(self):
        """A5: a request any actor touched without its payer's consent has no record (each such request is read
        the step after it is touched, then every tenth step and in a rotating window: `ReadSchedule`)."""
        snap = self._view()
        for key in (self.touched - self.consented) & snap["records"].keys():
            assert snap["records"][key][0] == Status.NONE, f"{key} was recorded without its payer's consent"

    @invariant()
    def a6_one_fault_one_slash(self):
        """A6: slashes per operator = rejected batches it posted + missed proofs it owed."""
        for operator in (self.N, self.R, self.C, self.F):
            assert self.slashes_seen[operator] == self.faults[operator], (
                f"{self._name(operator)}: {self.slashes_seen[operator]} slashes for {self.faults[operator]} faults")
        rejected = Counter(p.relayer for p in self.posted.values() if p.rejected)
        missed = Counter(rec.node for rec in self.recs.values() if rec.kind == "failed")
        assert self.faults == rejected + missed

    @invariant()
    def i4_opg_conserved(self):
        """I4: everything the settlement holds is owed (escrow, proceeds, custody) and came in through a deposit
        or a wallet charge; every credit is the payment-split model's; the stakers' share of each split reached
        NodeStaking's reward reserve in the same transaction (nobody claims staking rewards here)."""
        snap = self._view()
        held = sum(custody[1] for custody in snap["custody"].values())
        owed = sum(snap["escrow"].values()) + sum(snap["proceeds"].values())
        assert snap["balance"] == owed + held
        assert snap["balance"] == self.balance_before + self.paid_in - self.paid_out
        assert snap["proceeds"] == self.proceeds
        assert +self.staker_seen == +self.staker_owed
        assert snap["reward_reserve"] - self.reward_reserve_before == sum(self.staker_seen.values())
        assert {a: snap["escrow"][a] for a in self.escrow} == self.escrow


@pytest.mark.machine
def test_settlement_state_machine(chain, settlement, batches, token, staking, models, tees, tee_key, open_model,
                                  zk_model, register_model, operator, operator2, alice, bob, carol, treasury, reporter,
                                  gov):
    rpc = json_rpc(chain)
    lane_model = register_model("machine lane", [Mode.VANILLA, Mode.TEE])
    copycat, front_runner, squatter = (Account.from_key(keccak(text=f"settlement machine {name}"))
                                       for name in ("copycat", "front-runner", "squatter"))
    for account in (copycat, front_runner, squatter):
        rpc.request("anvil_impersonateAccount", account.address)
        rpc.request("anvil_setBalance", account.address, hex(10**21))
    for account, roles, bond in ((copycat, RELAYER_BIT, 500_000 * OPG), (front_runner, INFERENCE_BIT, 100_000 * OPG)):
        token.transfer(account.address, bond, sender=treasury)
        for to, data in ((token, token.approve.encode_input(staking.address, MAX_UINT)),
                         (staking, staking.registerOperator.encode_input(roles, bond, 0))):
            assert rpc.send(account.address, to.address, data)["status"] == "0x1"

    separator = bytes(domain_of(settlement).separator)
    probe = receipt("machine probe", open_model, operator.address, 1, payer=alice.address, price=PRICE)
    digest = keccak(b"\x19\x01" + separator + SettlementMachine._receipt_hash(probe))
    assert digest == bytes(settlement.receiptDigest(probe.as_args())), "the machine signs under another domain"
    keys = {operator.address: operator.private_key, alice.address: alice.private_key, bob.address: bob.private_key,
            tee_key.address: tee_key.key}
    keys |= {account.address: account.key for account in (copycat, front_runner, squatter)}
    params = dict(
        split=(settlement.protocolFeeBps(), settlement.stakerRewardBps(), settlement.modelOwnerBps()),
        minimum=[staking.minimumStake(role) for role in (INFERENCE, TEE_NODE, RELAYER)],
        proof_window=settlement.proofWindow(), challenge_window=batches.challengeWindow(),
        max_age=batches.maxReceiptAgeAt(chain.blocks.head.timestamp + 1),  # the limit for a batch posted from now on
        last_beat=tees.lastHeartbeat(tee_key.address),
    )
    SettlementMachine.env = dict(
        rpc=rpc, abi=Abi([settlement, batches, staking, token]), chain=chain, settlement=settlement, batches=batches,
        staking=staking, token=token, tees=tees, models=models, open_model=open_model, zk_model=zk_model,
        lane_model=lane_model, tee_key=tee_key, N=operator.address, R=operator2.address, C=copycat.address,
        F=front_runner.address, S=squatter.address, payers=[alice.address, bob.address], reporter=reporter.address,
        gov=gov.address, carol=carol.address, treasury=treasury.address, keys=keys, domain_separator=separator,
        params=params,
    )
    steps = max(settings.default.stateful_step_count, MIN_STEPS)
    run_state_machine_as_test(SettlementMachine, settings=settings(settings.default, stateful_step_count=steps))
