"""Stateful property test of InferenceSettlement. Invariants: tests/INVARIANTS.md (I1–I5)."""

import ape
from ape.utils import ZERO_ADDRESS
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from opgkit.receipts import ReceiptBatch, SignedReceipt, Status, sign_payment, sign_receipt, zkml_proof_evidence
from opgkit.testing import ChainStateMachine, advance
from settlement_helpers import OPG, PRICE, Mode, authorization, receipt, zk_outputs, zk_receipt

NO_AUTH = (b"\x00" * 32, 0, 0, 0)
INFERENCE_ROLE, RELAYER_ROLE = 0, 2


class SettlementMachine(ChainStateMachine):
    """Individual, batch and asynchronous settlement with payments, challenges, withdrawals and time travel."""

    env = None

    def __init__(self):
        super().__init__()
        e = self.env
        self.s, self.token, self.staking, self.chain = e["settlement"], e["token"], e["staking"], e["chain"]
        self.node, self.relayer, self.payers, self.challenger = e["operator"], e["relayer"], e["payers"], e["reporter"]
        self.payees = e["payees"]
        self.counter = 0
        self.balance_in = self.token.balanceOf(self.s)  # what the contract held before this run
        self.paid_in = 0
        self.paid_out = 0
        self.settled_events = set()  # requestIds with a ReceiptSettled event
        self.final = set()
        self.authorized = {}  # requestId -> (payer, maxAmount)
        self.charged = {}  # requestId -> amount
        self.batches = []  # dicts: id, batch, forged index or None, rejected
        self.pending = {}  # requestId -> (receipt, inputs, deadline)

    # ------------------------------------------------------------ helpers

    def _label(self, kind):
        self.counter += 1
        return f"machine {kind} {self.counter} {id(self)}"

    def _now(self):
        return self.chain.blocks.head.timestamp

    def _active(self, operator, role):
        """Whether ``operator`` may act in ``role``, unjailing it first when its jail time is over."""
        if self.staking.isActiveOperator(operator, role):
            return True
        pool = self.staking.pool(operator)
        if pool.jailed and pool.jailedUntil <= self.chain.pending_timestamp:
            self.staking.unjail(sender=operator)
            return True
        return False

    def _node_ready(self):
        return self._active(self.node, INFERENCE_ROLE)

    def _relayer_ready(self):
        return self._active(self.relayer, RELAYER_ROLE)

    def _authorize(self, r, payer, max_amount):
        auth = authorization(r, max_amount=max_amount)
        self.authorized[r.requestId] = (payer.address, max_amount)
        return auth, sign_payment(self.s, auth, payer.private_key)

    def _observe(self, tx):
        for event in tx.events.filter(self.s.ReceiptSettled):
            # I1: a requestId settles at most once.
            assert event.requestId not in self.settled_events
            self.settled_events.add(event.requestId)
        for event in tx.events.filter(self.s.PaymentCharged):
            assert event.requestId not in self.charged
            self.charged[event.requestId] = event.amount
            if not event.fromEscrow:
                self.paid_in += event.amount
        for event in tx.events.filter(self.s.Deposited):
            self.paid_in += event.amount
        for event in tx.events.filter(self.s.EscrowWithdrawn):
            self.paid_out += event.amount
        for event in tx.events.filter(self.s.ProceedsWithdrawn):
            self.paid_out += event.amount
        for event in tx.events.filter(self.s.StakerRewardsDistributed):
            self.paid_out += event.amount

    # ------------------------------------------------------------ rules

    @rule(payer=st.integers(0, 1), amount=st.integers(1, 5 * OPG))
    def deposit(self, payer, amount):
        self._observe(self.s.deposit(amount, sender=self.payers[payer]))

    @rule(payer=st.integers(0, 1), fraction=st.integers(1, 100))
    def withdraw_escrow(self, payer, fraction):
        available = self.s.escrowOf(self.payers[payer])
        if available:
            self._observe(self.s.withdrawEscrow(max(1, available * fraction // 100), sender=self.payers[payer]))

    @rule(priced=st.booleans(), payer=st.integers(0, 1), short=st.booleans())
    def settle_individual(self, priced, payer, short):
        if not self._node_ready():
            return
        payer = self.payers[payer]
        r = receipt(self._label("individual"), self.env["model"], self.node.address, self._now(),
                    payer=payer.address if priced else ZERO_ADDRESS, price=PRICE if priced else 0)
        signature = sign_receipt(self.s, r, self.node.private_key)
        if not priced:
            self._observe(self.s.settle(r.as_args(), signature, sender=self.challenger))
        elif short:
            auth, auth_sig = self._authorize(r, payer, PRICE - 1)
            with ape.reverts(self.s.InferenceSettlementPriceAboveAuthorization):
                self.s.settleAndPay(r.as_args(), signature, auth.as_args(), auth_sig, sender=self.node)
            return
        else:
            auth, auth_sig = self._authorize(r, payer, PRICE + OPG)
            self._observe(self.s.settleAndPay(r.as_args(), signature, auth.as_args(), auth_sig, sender=self.node))
        self.final.add(r.requestId)

    @precondition(lambda self: self.settled_events)
    @rule(pick=st.integers(0, 10**6))
    def replay_settled(self, pick):
        request_id = sorted(self.settled_events)[pick % len(self.settled_events)]
        r = receipt("replay", self.env["model"], self.node.address, self._now()).with_changes(requestId=request_id)
        with ape.reverts(self.s.InferenceSettlementAlreadySettled, requestId=request_id):
            self.s.settle(r.as_args(), sign_receipt(self.s, r, self.node.private_key), sender=self.challenger)

    @rule(size=st.integers(1, 4), forge=st.booleans(), priced=st.booleans())
    def post_batch(self, size, forge, priced):
        if not self._relayer_ready():
            return
        payer = self.payers[0]
        signed = []
        for _ in range(size):
            r = receipt(self._label("leaf"), self.env["model"], self.node.address, self._now(),
                        payer=payer.address if priced else ZERO_ADDRESS, price=PRICE if priced else 0)
            signed.append(SignedReceipt(r, sign_receipt(self.s, r, self.node.private_key)))
        forged = None
        if forge:
            forged = size - 1
            signed[forged] = SignedReceipt(signed[forged].receipt, b"\x11" * 65)
        batch = ReceiptBatch(signed)
        tx = self.s.postBatch(batch.root, len(batch), "", sender=self.relayer)
        batch_id = tx.events.filter(self.s.BatchPosted)[0].batchId
        self.batches.append(dict(id=batch_id, batch=batch, forged=forged, claimed=set()))

    @precondition(lambda self: self.batches)
    @rule(pick=st.integers(0, 10**6), leaf=st.integers(0, 3))
    def claim_leaf(self, pick, leaf):
        entry = self.batches[pick % len(self.batches)]
        batch, index = entry["batch"], leaf % len(entry["batch"])
        r = batch.signed[index].receipt
        status = self.s.batchStatus(entry["id"])
        if status == Status.REJECTED or index == entry["forged"]:
            return  # forged leaves would be recorded too; their batch is what the challenge is for
        if self.s.verifiedOutput(r.requestId).status != Status.NONE and r.requestId not in entry["claimed"]:
            return
        chargeable = r.price and status == Status.FINAL
        if r.requestId in entry["claimed"] and not chargeable:
            with ape.reverts(self.s.InferenceSettlementAlreadySettled, requestId=r.requestId):
                self.s.claimBatchReceipt(entry["id"], batch.leaf(index), NO_AUTH, b"", sender=self.node)
            return
        if chargeable and r.requestId in self.charged:
            with ape.reverts(self.s.InferenceSettlementAlreadySettled, requestId=r.requestId):
                self.s.claimBatchReceipt(entry["id"], batch.leaf(index), NO_AUTH, b"", sender=self.node)
            return
        auth, auth_sig = self._authorize(r, self.payers[0], PRICE) if chargeable else (None, b"")
        self._observe(self.s.claimBatchReceipt(entry["id"], batch.leaf(index), auth.as_args() if auth else NO_AUTH,
                                               auth_sig, sender=self.node))
        entry["claimed"].add(r.requestId)

    @precondition(lambda self: self.batches)
    @rule(pick=st.integers(0, 10**6))
    def challenge(self, pick):
        entry = self.batches[pick % len(self.batches)]
        status = self.s.batchStatus(entry["id"])
        index = entry["forged"] if entry["forged"] is not None else 0
        leaf = entry["batch"].leaf(index)
        if status != Status.PENDING:
            with ape.reverts():
                self.s.challenge(entry["id"], leaf, sender=self.challenger)
        elif entry["forged"] is None:
            with ape.reverts(self.s.InferenceSettlementNoFault):
                self.s.challenge(entry["id"], leaf, sender=self.challenger)
        else:
            self._record_an_honest_leaf(entry)
            self._observe(self.s.challenge(entry["id"], leaf, sender=self.challenger))
            assert self.s.batchStatus(entry["id"]) == Status.REJECTED

    def _record_an_honest_leaf(self, entry):
        """Record one honest receipt of a batch about to be rejected, so I3 has something to check."""
        batch = entry["batch"]
        for index, item in enumerate(batch.signed):
            request_id = item.receipt.requestId
            if index != entry["forged"] and self.s.verifiedOutput(request_id).status == Status.NONE:
                self.s.claimBatchReceipt(entry["id"], batch.leaf(index), NO_AUTH, b"", sender=self.node)
                entry["claimed"].add(request_id)
                return

    @rule(priced=st.booleans(), x=st.integers(0, 1000))
    def post_pending(self, priced, x):
        if not self._node_ready():
            return
        inputs = [x, x + 1, x + 2]
        r = zk_receipt(self._label("async"), self.env["zk_model"], self.node.address, self._now(), inputs,
                       payer=self.payers[1].address if priced else ZERO_ADDRESS, price=PRICE if priced else 0)
        if priced:
            auth, auth_sig = self._authorize(r, self.payers[1], PRICE)
            tx = self.s.postPendingAndPay(r.as_args(), auth.as_args(), auth_sig, sender=self.node)
        else:
            tx = self.s.postPending(r.as_args(), sender=self.node)
        self._observe(tx)
        self.pending[r.requestId] = (r, inputs, self.s.pendingProof(r.requestId).deadline)

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 10**6))
    def resolve_pending(self, pick):
        request_id = sorted(self.pending)[pick % len(self.pending)]
        r, inputs, deadline = self.pending.pop(request_id)
        if self.chain.pending_timestamp <= deadline:
            evidence = zkml_proof_evidence(b"", inputs, zk_outputs(inputs))
            self._observe(self.s.deliverProof(r.as_args(), evidence, sender=self.challenger))
            self.final.add(request_id)
        else:
            self._observe(self.s.reportMissedProof(request_id, sender=self.challenger))
            assert self.s.verifiedOutput(request_id).status == Status.FAILED

    @rule(seconds=st.sampled_from([30, 1_800, 3_700, 90_000]))
    def advance_time(self, seconds):
        advance(self.chain, seconds)

    @rule(who=st.integers(0, 3))
    def withdraw_proceeds(self, who):
        account = self.payees[who]
        if self.s.proceedsOf(account):
            self._observe(self.s.withdrawProceeds(sender=account))

    @rule()
    def distribute_staker_rewards(self):
        if self.s.stakerRewardsOwed(self.node):
            self._observe(self.s.distributeStakerRewards(self.node, sender=self.challenger))

    # ------------------------------------------------------------ invariants

    @invariant()
    def final_is_terminal(self):
        # I2: FINAL never changes.
        for request_id in self.final:
            assert self.s.verifiedOutput(request_id).status == Status.FINAL

    @invariant()
    def rejected_batches_never_verified(self):
        # I3: a rejected batch's receipts are never reported verified (unless settled again elsewhere).
        for entry in self.batches:
            if self.s.batchStatus(entry["id"]) != Status.REJECTED:
                continue
            for request_id in entry["claimed"]:
                assert self.s.verifiedOutput(request_id).status == Status.REJECTED
                with ape.reverts(self.s.InferenceSettlementNotVerified):
                    self.s.requireVerified(request_id, Mode.VANILLA, False)

    @invariant()
    def opg_in_equals_out_plus_held(self):
        # I4: every OPG the contract holds is owed to someone, and came in through a deposit or a charge.
        balance = self.token.balanceOf(self.s)
        assert balance == self.balance_in + self.paid_in - self.paid_out
        owed = sum(self.s.escrowOf(p) for p in self.payers) + sum(self.s.proceedsOf(a) for a in self.payees)
        owed += self.s.stakerRewardsOwed(self.node)
        owed += sum(self.s.pendingProof(request_id).held for request_id in self.pending)
        assert balance - self.balance_in == owed - self.env["owed_before"]

    @invariant()
    def nobody_pays_more_than_authorized(self):
        # I5: each charge is within the authorization of its request.
        for request_id, amount in self.charged.items():
            assert amount <= self.authorized[request_id][1]


def test_settlement_state_machine(chain, settlement, token, staking, open_model, zk_model, operator, operator2, alice,
                                  bob, carol, treasury, reporter):
    staking.stake(operator2, 450_000 * OPG, sender=operator2)  # room for several slashes above the relayer minimum
    payees = [operator, carol, treasury, reporter]
    owed_before = (sum(settlement.escrowOf(p) for p in (alice, bob)) + sum(settlement.proceedsOf(a) for a in payees)
                   + settlement.stakerRewardsOwed(operator))
    SettlementMachine.env = dict(
        settlement=settlement, token=token, staking=staking, chain=chain, model=open_model, zk_model=zk_model,
        operator=operator, relayer=operator2, payers=[alice, bob], reporter=reporter, payees=payees,
        owed_before=owed_before,
    )
    run_state_machine_as_test(SettlementMachine)
