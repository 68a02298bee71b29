"""InferenceRequests as a state machine with adversaries: consumers open requests; an honest node answers on the
request's terms; an attacker node answers off them, squats with forged consent, and posts asynchronous results
it never proves; a hostile consumer's callback reverts or burns its gas; anyone reports, reopens, refunds and
retries; time passes. Invariants: tests/INVARIANTS.md (R1–R4)."""

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

from opgkit.receipts import Status, contract_consent, instances_hash, zkml_evidence
from opgkit.testing import ChainStateMachine, advance
from settlement_helpers import (
    HOUR, INFERENCE_BIT, OPG, PRICE, PROOF_WINDOW, Mode, authorization, funds_of, receipt, reverts_exactly,
    zk_outputs,
)

IMMEDIATE, DELAYED = 0, 1
OPEN, DELIVERED, CALLBACK_FAILED, REFUNDED = 1, 2, 3, 4
ACCEPT, REVERT, BURN_GAS = 0, 1, 2
CALLBACK_GAS = 200_000


class Request:
    """The model of one request: its terms, and what the machine has done to it."""

    def __init__(self, request_id, consumer, model, inputs, input_hash, finality, fee, expires_at):
        self.id, self.consumer, self.model, self.inputs = request_id, consumer, model, inputs
        self.input_hash, self.finality, self.fee, self.expires_at = input_hash, finality, fee, expires_at
        self.state = OPEN
        self.attempt = 0
        self.pending_deadline = None  # an attacker's unproven result in the current attempt
        self.reported = False
        self.deliveries = 0

    @property
    def settlement_id(self) -> bytes:
        return ((self.attempt << 128) | int.from_bytes(self.id, "big")).to_bytes(32, "big")


class RequestsMachine(ChainStateMachine):
    requests = settlement = token = chain = None
    consumers: list = []
    honest = attacker = keeper = None
    open_model = zk_model = None
    sign = None

    def __init__(self):
        super().__init__()
        self.opened: list[Request] = []
        self.behaviour = ACCEPT

    # ---------------------------------------------------------------- helpers

    def _now(self):
        return self.chain.blocks.head.timestamp

    def _answer(self, request, signer, output_text="honest"):
        """A receipt by ``signer`` answering ``request``'s current attempt on its terms, and its output: the
        model's output instances for ZKML, a text otherwise."""
        if request.inputs is not None:
            mode, output = Mode.ZKML, encode(["uint256[]"], [zk_outputs(request.inputs)])
        else:
            mode, output = Mode.VANILLA, f"{output_text} {request.id.hex()}".encode()
        r = receipt("machine", request.model, signer.address, self._now(), mode=mode, price=PRICE,
                    payer=self.requests.address, input_hash=request.input_hash, output_hash=keccak(output))
        return r.with_changes(requestId=request.settlement_id), output

    def _evidence(self, request, r, signer):
        signature = self.sign(r, signer)
        if request.inputs is None:
            return signature
        return zkml_evidence(signature, b"", request.inputs, zk_outputs(request.inputs))

    def _answerable(self, request) -> bool:
        # a margin of a few seconds: the next block's time is not known exactly
        return request.state == OPEN and self._now() + 5 < request.expires_at and request.pending_deadline is None

    def _status(self, request) -> int:
        return self.settlement.recordOf(self.requests, request.settlement_id).status

    # ---------------------------------------------------------------- consumers

    @precondition(lambda self: len(self.opened) < 8)
    @rule(consumer=st.integers(0, 1), zk=st.booleans(), finality=st.sampled_from([IMMEDIATE, DELAYED]),
          extra=st.integers(0, 3), ttl_hours=st.integers(1, 4))
    def open(self, consumer, zk, finality, extra, ttl_hours):
        fee = PRICE + extra * OPG
        model = self.zk_model if zk else self.open_model
        inputs = [len(self.opened), extra, ttl_hours] if zk else None
        terms = instances_hash(inputs) if zk else keccak(text=f"question {len(self.opened)}")
        tx = self.consumers[consumer].openRequest(model, terms, Mode.VANILLA if not zk else Mode.ZKML, finality, fee,
                                                  CALLBACK_GAS, ttl_hours * HOUR, sender=self.keeper)
        request_id = [log for log in tx.events if log.event_name == "RequestOpened"][0].requestId
        self.opened.append(Request(request_id, self.consumers[consumer], model, inputs, terms, finality, fee,
                                   tx.timestamp + ttl_hours * HOUR))

    @rule(behaviour=st.sampled_from([ACCEPT, REVERT, BURN_GAS]))
    def hostile_consumer_changes_behaviour(self, behaviour):
        self.consumers[1].setBehaviour(behaviour, sender=self.keeper)
        self.behaviour = behaviour

    # ---------------------------------------------------------------- the honest node

    @rule(data=st.data())
    def honest_node_fulfils(self, data):
        candidates = [r for r in self.opened if self._answerable(r)]
        if not candidates:
            return
        request = data.draw(st.sampled_from(candidates))
        r, output = self._answer(request, self.honest)
        tx = self.requests.fulfill(request.id, r.as_args(), self._evidence(request, r, self.honest), output,
                                   sender=self.honest)
        assert self._status(request) == Status.FINAL  # R3: a failing callback never blocks settlement
        failed = bool(tx.events.filter(self.requests.CallbackFailed))
        hostile_fails = request.consumer == self.consumers[1] and self.behaviour != ACCEPT
        assert failed == hostile_fails
        request.state = CALLBACK_FAILED if failed else DELIVERED
        request.deliveries += 0 if failed else 1

    @rule(data=st.data())
    def anyone_retries_a_failed_callback(self, data):
        candidates = [r for r in self.opened if r.state == CALLBACK_FAILED]
        if not candidates:
            return
        request = data.draw(st.sampled_from(candidates))
        r, output = self._answer(request, self.honest)
        tx = self.requests.retryCallback(request.id, output, sender=self.keeper)
        if tx.events.filter(self.requests.CallbackDelivered):
            request.state = DELIVERED
            request.deliveries += 1

    # ---------------------------------------------------------------- the attacker node

    @rule(data=st.data(), how=st.sampled_from(["input", "price", "output", "old attempt"]))
    def attacker_answers_off_terms(self, data, how):
        candidates = [r for r in self.opened if self._answerable(r)]
        if not candidates:
            return
        request = data.draw(st.sampled_from(candidates))
        r, output = self._answer(request, self.attacker, "forged")
        error = self.requests.InferenceRequestsWrongTerms
        if how == "input":
            r = r.with_changes(inputHash=keccak(text="attacker's question"))
        elif how == "price":
            r = r.with_changes(price=request.fee + 1)
            error = self.requests.InferenceRequestsPriceAboveFee
        elif how == "output":
            output = b"not the signed output"
            error = self.requests.InferenceRequestsWrongOutput
        else:
            r = r.with_changes(requestId=(((request.attempt + 1) << 128) | int.from_bytes(request.id, "big"))
                               .to_bytes(32, "big"))
            error = self.requests.InferenceRequestsWrongRequest
        with reverts_exactly(error, requestId=request.id):
            self.requests.fulfill(request.id, r.as_args(), self._evidence(request, r, self.attacker), output,
                                  sender=self.attacker)

    @rule(data=st.data())
    def attacker_squats_with_forged_consent(self, data):
        """Consent for another input, or for an Immediate request: refused by the requests contract."""
        candidates = [r for r in self.opened if r.inputs is None and r.state == OPEN]
        if not candidates:
            return
        request = data.draw(st.sampled_from(candidates))
        r, _ = self._answer(request, self.attacker, "squat")
        if request.finality == DELAYED:
            r = r.with_changes(inputHash=keccak(text="attacker's question"))
        auth = authorization(r, node=self.attacker.address)
        with reverts_exactly(self.settlement.InferenceSettlementBadAuthorizationSignature,
                             payer=self.requests.address):
            self.settlement.settleWithAuthorization(r.as_args(), self.sign(r, self.attacker), auth.as_args(),
                                                    contract_consent(auth), sender=self.attacker)

    @rule(data=st.data())
    def attacker_posts_and_never_proves(self, data):
        candidates = [r for r in self.opened if self._answerable(r) and r.inputs is not None
                      and r.finality == DELAYED]
        if not candidates or not self.staking.isActiveOperator(self.attacker, 0):
            return
        request = data.draw(st.sampled_from(candidates))
        advance(self.chain, 1)
        r, _ = self._answer(request, self.attacker)
        advance(self.chain, 1)
        auth = authorization(r, node=self.attacker.address)
        tx = self.settlement.postPending(r.as_args(), auth.as_args(), contract_consent(auth), sender=self.attacker)
        request.pending_deadline = tx.timestamp + PROOF_WINDOW

    # ---------------------------------------------------------------- anyone

    @rule(data=st.data())
    def keeper_reports_a_missed_proof(self, data):
        candidates = [r for r in self.opened if r.pending_deadline is not None and not r.reported
                      and self._now() > r.pending_deadline]
        if not candidates:
            return
        request = data.draw(st.sampled_from(candidates))
        self.settlement.reportMissedProof(self.requests, request.settlement_id, sender=self.keeper)
        request.reported = True

    @rule(data=st.data())
    def anyone_reopens(self, data):
        candidates = [r for r in self.opened if r.state == OPEN and r.reported]
        if not candidates:
            return
        request = data.draw(st.sampled_from(candidates))
        self.requests.reopen(request.id, sender=self.keeper)
        request.attempt += 1
        request.pending_deadline, request.reported = None, False

    @rule(data=st.data())
    def anyone_refunds(self, data):
        candidates = [r for r in self.opened if r.state == OPEN]
        if not candidates:
            return
        request = data.draw(st.sampled_from(candidates))
        if request.pending_deadline is not None and not request.reported:
            return  # refused while a proof is owed or unreported (tests/settlement/test_requests.py)
        if self._now() >= request.expires_at:
            before = self.token.balanceOf(request.consumer)
            self.requests.refund(request.id, sender=self.keeper)
            assert self.token.balanceOf(request.consumer) == before + request.fee
            request.state = REFUNDED
        elif self._now() + 5 < request.expires_at:
            with reverts_exactly(self.requests.InferenceRequestsNotExpired, requestId=request.id):
                self.requests.refund(request.id, sender=self.keeper)

    @rule(seconds=st.sampled_from([60, HOUR, 2 * HOUR]))
    def time_passes(self, seconds):
        advance(self.chain, seconds)

    # ---------------------------------------------------------------- invariants

    @invariant()
    def r1_fees_accounted(self):
        owed = 0
        for request in self.opened:
            if request.state == OPEN:
                owed += request.fee - self.settlement.custodyOf(self.requests, request.settlement_id).held
        assert funds_of(self.settlement, self.token, self.requests) == owed

    @invariant()
    def r2_states_match_the_model(self):
        for request in self.opened:
            stored = self.requests.requestOf(request.id)
            assert (stored.state, stored.attempt) == (request.state, request.attempt)
            assert request.deliveries <= 1
        for consumer in self.consumers:  # each delivered answer was called back exactly once
            assert consumer.calls() == sum(r.deliveries for r in self.opened if r.consumer == consumer)

    @invariant()
    def r4_no_record_off_the_machines_books(self):
        for request in self.opened:
            status = self._status(request)
            if request.state in (DELIVERED, CALLBACK_FAILED):
                assert status == Status.FINAL
            elif request.pending_deadline is not None:
                assert status in (Status.PENDING, Status.FAILED)
            else:
                assert status == Status.NONE


@pytest.mark.machine
def test_requests_state_machine(chain, project, deployer, settlement, staking, models, token, treasury, open_model,
                                zk_model, operator, bob, reporter, sign):
    requests = deployer.deploy(project.InferenceRequests, settlement, models, token)
    consumers = []
    for _ in range(2):
        consumer = deployer.deploy(project.ExploitCallbackConsumer, requests, token)
        token.transfer(consumer, 1_000 * OPG, sender=treasury)
        consumers.append(consumer)
    staking.registerOperator(INFERENCE_BIT, 50_000 * OPG, 0, sender=bob)
    advance(chain, 1)
    RequestsMachine.requests, RequestsMachine.settlement, RequestsMachine.token = requests, settlement, token
    RequestsMachine.staking, RequestsMachine.chain, RequestsMachine.consumers = staking, chain, consumers
    RequestsMachine.honest, RequestsMachine.attacker, RequestsMachine.keeper = operator, bob, reporter
    RequestsMachine.open_model, RequestsMachine.zk_model = open_model, zk_model
    RequestsMachine.sign = staticmethod(sign)
    run_state_machine_as_test(RequestsMachine)
