"""Attack regressions for the settlement findings F1-F10.

Each test plays one attack (or, where settlement v2 removed its original surface, the strongest equivalent one)
and asserts the safe behaviour: the attack reverts with a named error, or succeeds only in harming nobody.
"""

import pytest
from ape.utils import ZERO_ADDRESS
from eth_account import Account
from eth_utils import keccak

from opgkit.manifest import OutputManifest
from opgkit.receipts import NO_AUTHORIZATION, Fault, Status, zkml_evidence
from opgkit.testing import advance
from settlement_helpers import (
    CHALLENGE_WINDOW, INFERENCE_BIT, OPG, PRICE, PROOF_WINDOW, RELAYER_BIT, Mode, answer_hash, authorization,
    funds_of, model_spec, post_batch, receipt, recorded_hash, reverts_exactly, signed_batch, zk_outputs, zk_receipt,
)

MAX_RISK = 40
PAYOUT = 1_000 * OPG
USAGE = {"inputTokens": 812, "outputTokens": 2}
USAGE_JSON = '{"inputTokens":812,"outputTokens":2}'
NODE_BOND = 50_000 * OPG  # as in conftest.py
NODE_SHARE_BPS = 10_000 - 500 - 1_000 - 2_000  # what the default fee split leaves the node
INFERENCE, TEE_NODE = 0, 1  # NodeStaking.Role


def node_share(price):
    return price * NODE_SHARE_BPS // 10_000


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def attacker_node(staking, bob):
    """A second, fully legitimate active inference node (and relayer) that turns against the others."""
    staking.registerOperator(INFERENCE_BIT | RELAYER_BIT, NODE_BOND, 0, sender=bob)
    assert staking.isActiveOperator(bob, INFERENCE) and staking.isActiveOperator(bob, 2)
    return bob


@pytest.fixture
def copycat_relayer(staking, bob):
    staking.registerOperator(RELAYER_BIT, NODE_BOND, 0, sender=bob)
    return bob


@pytest.fixture
def tee_receipt(open_model, tee_key, alice, heartbeat):
    """A TEE receipt of `tee_key` (run by `operator`) for a request of `alice`, made now."""

    def make(label, price=PRICE, payer=None):
        return receipt(label, open_model, tee_key.address, heartbeat(), mode=Mode.TEE,
                       payer=(payer or alice).address, price=price)

    return make


@pytest.fixture(scope="module")
def vault(project, deployer, settlement, token, tee_model, gov, treasury):
    vault = deployer.deploy(project.RiskGatedVault, settlement, token, tee_model, Mode.TEE, MAX_RISK, gov)
    token.transfer(vault, 10 * PAYOUT, sender=treasury)
    return vault


def assessment(vault, application_id, model_id, signer, timestamp, score, payer, mode=Mode.TEE):
    """A receipt answering the vault's application with `score`, in `payer`'s namespace."""
    manifest = OutputManifest(text=str(score), usage=USAGE)
    return receipt(f"vault {application_id} {score} {mode}", model_id, signer, timestamp, mode=mode, payer=payer,
                   output_hash=manifest.output_hash()).with_changes(
        requestId=vault.requestIdOf(application_id), inputHash=vault.inputHashOf(application_id))


def open_application(vault, gov, recipient):
    return vault.open(recipient, PAYOUT, sender=gov).events.filter(vault.ApplicationOpened)[0].applicationId


# ---------------------------------------------------------------- F1


@pytest.mark.parametrize("variant", ["vanilla", "zkml"])
def test_f1_payment_authorization_front_run__other_node_cannot_use_it(variant, settlement, batches, token, open_model,
                                                                     zk_model, operator, alice, attacker_node, sign,
                                                                     sign_auth, now, chain):
    """The payer's authorization names the node: another node can neither spend it on its own receipt nor record
    anything in the payer's namespace without consent; the honest node is then paid."""
    attacker = attacker_node
    ceiling = 3 * PRICE
    if variant == "vanilla":
        honest = receipt("f1-front-run", open_model, operator.address, now(), payer=alice.address, price=PRICE)
        honest_evidence = sign(honest, operator)
        # The attacker answers the same request itself (any output) and prices it at the ceiling.
        stolen = honest.with_changes(signer=attacker.address, price=ceiling, outputHash=answer_hash("attacker's"))

        def evidence(r):
            return sign(r, attacker)
    else:
        inputs = [3, 4, 5]
        outputs = zk_outputs(inputs)
        honest = zk_receipt("f1-front-run-zk", zk_model, operator.address, now(), inputs, payer=alice.address,
                            price=PRICE)
        honest_evidence = zkml_evidence(sign(honest, operator), b"", inputs, outputs)
        # The proof is public: the attacker re-signs the honest node's proven result as its own.
        stolen = honest.with_changes(signer=attacker.address, price=ceiling)

        def evidence(r):
            return zkml_evidence(sign(r, attacker), b"", inputs, outputs)
    free = stolen.with_changes(price=0)
    request = honest.requestId

    auth = authorization(honest, max_amount=ceiling)  # names the honest node
    auth_signature = sign_auth(auth, alice)  # seen in the mempool / the node's API

    # The attacker's own receipts under the payer's authorization: the node does not match.
    for r in (stolen, free):
        with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=request):
            settlement.settleWithAuthorization(r.as_args(), evidence(r), auth.as_args(), auth_signature,
                                               sender=attacker)
    # A free receipt in the payer's namespace without its consent.
    with reverts_exactly(settlement.InferenceSettlementNotPayer, caller=attacker.address, payer=alice.address):
        settlement.settle(free.as_args(), evidence(free), sender=attacker)
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=request):
        settlement.settleWithAuthorization(free.as_args(), evidence(free), NO_AUTHORIZATION, b"", sender=attacker)
    self_made = authorization(free)  # names the attacker, but is not signed by the payer
    with reverts_exactly(settlement.InferenceSettlementBadAuthorizationSignature, payer=alice.address):
        settlement.settleWithAuthorization(free.as_args(), evidence(free), self_made.as_args(),
                                           sign_auth(self_made, attacker), sender=attacker)
    if variant == "zkml":
        # Posting the result as pending, as the node that owes its proof.
        for r, (a, a_signature) in ((stolen, (auth.as_args(), auth_signature)), (free, (NO_AUTHORIZATION, b""))):
            with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=request):
                settlement.postPending(r.as_args(), a, a_signature, sender=attacker)
    else:
        # Relaying the receipts in a batch of its own.
        batch = signed_batch(sign, [(stolen, attacker), (free, attacker)])
        advance(chain, 1)
        batch_id = post_batch(batches, batch, attacker)
        for index in range(len(batch)):
            for a, a_signature in ((auth.as_args(), auth_signature), (NO_AUTHORIZATION, b"")):
                with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=request):
                    batches.claimBatchReceipt(batch_id, batch.leaf(index), a, a_signature, sender=attacker)
    assert settlement.recordOf(alice, request).status == Status.NONE

    # The same request id in the attacker's own namespace is its own business and blocks nothing.
    own = free.with_changes(payer=attacker.address)
    settlement.settle(own.as_args(), evidence(own), sender=attacker)
    assert settlement.recordOf(attacker, request).status == Status.FINAL

    before = token.balanceOf(alice)
    settlement.settleWithAuthorization(honest.as_args(), honest_evidence, auth.as_args(), auth_signature,
                                       sender=operator)
    assert token.balanceOf(alice) == before - PRICE
    assert settlement.proceedsOf(operator) == node_share(PRICE)
    assert settlement.proceedsOf(attacker) == 0
    record = settlement.recordOf(alice, request)
    assert (record.status, record.receiptHash) == (Status.FINAL, recorded_hash(settlement, honest))
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=request):
        settlement.settleWithAuthorization(stolen.as_args(), evidence(stolen), authorization(stolen).as_args(),
                                           sign_auth(authorization(stolen), alice), sender=attacker)


# ---------------------------------------------------------------- F2


def test_f2_copycat_root__honest_relayer_not_slashed(settlement, staking, batches, make_batch, post, open_model,
                                                     operator, operator2, alice, copycat_relayer, sign_auth, now,
                                                     chain):
    leaves = [receipt(f"f2-{i}", open_model, operator.address, now(), payer=alice.address,
                      price=PRICE if i == 0 else 0) for i in range(3)]
    batch = make_batch([(r, operator) for r in leaves])
    # The copycat sees the honest relayer's postBatch in the mempool and posts the same root first...
    copy_id = post(batch, relayer=copycat_relayer)
    honest_id = post(batch, relayer=operator2)
    assert honest_id > copy_id
    stake_before = staking.selfBond(operator2)
    # ...and claims the copy's leaves first, with the payer's authorizations seen in the mempool.
    for index, r in enumerate(leaves):
        auth = authorization(r)
        auth_signature = sign_auth(auth, alice)
        batches.claimBatchReceipt(copy_id, batch.leaf(index), auth.as_args(), auth_signature, sender=copycat_relayer)
        with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=r.requestId):
            batches.claimBatchReceipt(honest_id, batch.leaf(index), auth.as_args(), auth_signature, sender=operator)

    # Neither the copy nor the claims made from it give the honest batch a fault.
    for index, r in enumerate(leaves):
        assert batches.faultOf(honest_id, batch.leaf(index)) == Fault.NONE
        with reverts_exactly(batches.BatchSettlementNoFault, batchId=honest_id, requestId=r.requestId):
            batches.challenge(honest_id, batch.leaf(index), sender=copycat_relayer)

    assert staking.selfBond(operator2) == stake_before
    assert batches.batchStatus(honest_id) == Status.PENDING
    advance(chain, CHALLENGE_WINDOW + 1)
    assert batches.batchStatus(honest_id) == Status.FINAL
    assert staking.selfBond(operator2) == stake_before
    # The copy earned the copycat nothing: the payment for the priced leaf goes to the node that answered.
    settlement.releaseBatchPayment(leaves[0].as_args(), sender=copycat_relayer)
    assert settlement.proceedsOf(operator) == node_share(PRICE)
    assert settlement.proceedsOf(copycat_relayer) == 0


@pytest.mark.parametrize("change", ["unbond", "drop_role", "jailed", "tee_disabled"])
def test_f2_signer_leaves_after_signing__honest_relayer_not_slashed(change, staking, tees, batches, make_batch, post,
                                                                    open_model, operator, operator2, attacker_node,
                                                                    alice, gov, tee_key, heartbeat, now, chain):
    """A signer that unbonds, drops its role, is jailed or disables its TEE after signing does not make the
    batches carrying its receipts faulty, whether they were posted before it left or after: the signer is judged
    at the receipt's timestamp."""
    if change == "tee_disabled":
        r = receipt(f"f2-{change}", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address)
        signer = tee_key
    else:
        r = receipt(f"f2-{change}", open_model, attacker_node.address, now(), payer=alice.address)
        signer = attacker_node
    neighbour = receipt(f"f2-{change}-neighbour", open_model, operator.address, now(), payer=alice.address)
    batch = make_batch([(r, signer), (neighbour, operator)])
    before_id = post(batch)

    advance(chain, 1)
    if change == "unbond":
        staking.unbond(attacker_node, staking.sharesOf(attacker_node, attacker_node), sender=attacker_node)
    elif change == "drop_role":
        staking.setRoles(RELAYER_BIT, sender=attacker_node)
    elif change == "jailed":
        staking.grantRole(staking.SLASHER_ROLE(), gov, sender=gov)
        staking.slash(attacker_node, 100, keccak(text="f2 unrelated offence"), gov, sender=gov)
    else:
        tees.setEnabled(tee_key.address, False, sender=operator)
    if change == "tee_disabled":
        assert not tees.isActive(tee_key.address, now())
    else:
        assert not staking.isActiveOperator(attacker_node, INFERENCE)
    after_id = post(batch)

    stake_before = staking.selfBond(operator2)
    for batch_id in (before_id, after_id):
        assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.NONE
        with reverts_exactly(batches.BatchSettlementNoFault, batchId=batch_id, requestId=r.requestId):
            batches.challenge(batch_id, batch.leaf(0), sender=attacker_node)
    advance(chain, CHALLENGE_WINDOW + 1)
    assert batches.batchStatus(before_id) == batches.batchStatus(after_id) == Status.FINAL
    assert staking.selfBond(operator2) == stake_before


# ---------------------------------------------------------------- F3


def test_f3_jailed_tee_operator__can_still_deliver_owed_proof(settlement, staking, tee_receipt, tee_key, operator,
                                                              alice, gov, reporter, sign, sign_auth, chain):
    r = tee_receipt("f3-jailed")
    auth = authorization(r, node=operator.address)
    settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=operator)
    evidence = sign(r, tee_key)  # valid: the key was active at the receipt's timestamp

    # Later (not within the receipt's own second), the operator is slashed and jailed for something unrelated.
    advance(chain, 1)
    staking.grantRole(staking.SLASHER_ROLE(), gov, sender=gov)
    staking.slash(operator, 100, keccak(text="f3 unrelated offence"), gov, sender=gov)
    assert not staking.isActiveOperator(operator, TEE_NODE)

    tx = settlement.deliverProof(r.as_args(), evidence, sender=operator)
    assert tx.events.filter(settlement.ProofDelivered)[0].deliveredBy == operator.address
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL
    assert settlement.proceedsOf(operator) == node_share(PRICE)

    # Nothing is left to report: the operator is not slashed a second time.
    bond_before = staking.selfBond(operator)
    advance(chain, PROOF_WINDOW + 1)
    with reverts_exactly(settlement.InferenceSettlementNotPending, payer=alice.address, requestId=r.requestId):
        settlement.reportMissedProof(alice, r.requestId, sender=reporter)
    assert staking.selfBond(operator) == bond_before
    assert settlement.recordOf(alice, r.requestId).status == Status.FINAL


# ---------------------------------------------------------------- F4


def test_f4_request_squatting__third_party_cannot_occupy_consumer_request(vault, settlement, batches, models, token,
                                                                        gov, carol, operator, tee_model, zk_model,
                                                                        tee_key, attacker_node, sign, sign_auth,
                                                                        heartbeat, now, chain):
    attacker = attacker_node
    application = open_application(vault, gov, carol)
    request = vault.requestIdOf(application)

    # The attacker registers a throw-away model and makes a free VANILLA answer under the vault's request id, in
    # the namespace of the vault's requester.
    tx = models.register(model_spec("f4-throwaway", [Mode.VANILLA]), sender=attacker)
    junk_model = tx.events.filter(models.ModelRegistered)[0].modelId
    squat = receipt("f4-squat", junk_model, attacker.address, now(), payer=gov.address).with_changes(requestId=request)
    with reverts_exactly(settlement.InferenceSettlementNotPayer, caller=attacker.address, payer=gov.address):
        settlement.settle(squat.as_args(), sign(squat, attacker), sender=attacker)
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=request):
        settlement.settleWithAuthorization(squat.as_args(), sign(squat, attacker), NO_AUTHORIZATION, b"",
                                           sender=attacker)
    # Through a batch it relays itself.
    batch = signed_batch(sign, [(squat, attacker)])
    advance(chain, 1)
    batch_id = post_batch(batches, batch, attacker)
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=request):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTHORIZATION, b"", sender=attacker)
    # As a pending result it owes the proof of (ZKML), or one of another node's TEE.
    zk_squat = zk_receipt("f4-zk-squat", zk_model, attacker.address, now(), [1, 2, 3],
                          payer=gov.address).with_changes(requestId=request)
    with reverts_exactly(settlement.InferenceSettlementAuthorizationMismatch, requestId=request):
        settlement.postPending(zk_squat.as_args(), NO_AUTHORIZATION, b"", sender=attacker)
    tee_squat = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 99, gov.address)
    with reverts_exactly(settlement.InferenceSettlementNotNode, account=attacker.address, node=operator.address):
        settlement.postPending(tee_squat.as_args(), NO_AUTHORIZATION, b"", sender=attacker)
    assert settlement.recordOf(gov, request).status == Status.NONE

    # In its own namespace the attacker may record what it likes; the vault's request is not in it.
    own = squat.with_changes(payer=attacker.address)
    settlement.settle(own.as_args(), sign(own, attacker), sender=attacker)
    assert settlement.recordOf(attacker, request).status == Status.FINAL

    real = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 12, gov.address)
    auth = authorization(real, node=operator.address)
    settlement.settleWithAuthorization(real.as_args(), sign(real, tee_key), auth.as_args(), sign_auth(auth, gov),
                                       sender=operator)

    before = token.balanceOf(carol)
    vault.release(application, real.as_args(), 12, USAGE_JSON, sender=carol)
    assert token.balanceOf(carol) == before + PAYOUT


def test_f4_receipt_in_attackers_namespace__refused_by_vault(vault, settlement, token, gov, operator, bob,
                                                             tee_model, tee_key, sign, sign_auth, heartbeat):
    """The attacker gets a genuine TEE answer with a passing score for the vault's request and input, in its own
    namespace, while the requester's own assessment scores too high: the vault takes only the requester's."""
    application = open_application(vault, gov, bob)
    own = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 12, bob.address)
    settlement.settle(own.as_args(), sign(own, tee_key), sender=bob)
    assert settlement.recordOf(bob, own.requestId).status == Status.FINAL
    with reverts_exactly(vault.RiskGatedVaultWrongRequester, payer=bob.address, expected=gov.address):
        vault.release(application, own.as_args(), 12, USAGE_JSON, sender=bob)

    real = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 90, gov.address)
    auth = authorization(real, node=operator.address)
    settlement.settleWithAuthorization(real.as_args(), sign(real, tee_key), auth.as_args(), sign_auth(auth, gov),
                                       sender=operator)
    with reverts_exactly(vault.RiskGatedVaultRiskTooHigh, riskScore=90, maximum=MAX_RISK):
        vault.release(application, real.as_args(), 90, USAGE_JSON, sender=bob)
    before = token.balanceOf(bob)
    with reverts_exactly(vault.RiskGatedVaultWrongRequester, payer=bob.address, expected=gov.address):
        vault.release(application, own.as_args(), 12, USAGE_JSON, sender=bob)
    assert token.balanceOf(bob) == before
    assert vault.committed() == PAYOUT


def test_f4_assessment_never_completes__owner_cancels_and_withdraws(vault, settlement, token, gov, carol, operator,
                                                                    tee_model, tee_key, sign, sign_auth, heartbeat,
                                                                    chain):
    application = open_application(vault, gov, carol)
    pending = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 12, gov.address)
    auth = authorization(pending, node=operator.address)
    settlement.postPending(pending.as_args(), auth.as_args(), sign_auth(auth, gov), sender=operator)
    advance(chain, PROOF_WINDOW + 1)  # the proof never comes
    assert settlement.recordOf(gov, pending.requestId).status == Status.FAILED
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=pending.requestId, status=Status.FAILED):
        vault.release(application, pending.as_args(), 12, USAGE_JSON, sender=carol)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=gov.address, requestId=pending.requestId):
        settlement.settle(pending.as_args(), sign(pending, tee_key), sender=gov)  # the request is spent

    balance = token.balanceOf(vault)
    with reverts_exactly(vault.OwnableUnauthorizedAccount, account=carol.address):
        vault.cancel(application, sender=carol)
    with reverts_exactly(vault.RiskGatedVaultUncommittedBalanceTooLow, available=balance - PAYOUT, requested=balance):
        vault.withdraw(gov, balance, sender=gov)
    vault.cancel(application, sender=gov)
    assert vault.committed() == 0
    with reverts_exactly(vault.RiskGatedVaultClosed, applicationId=application):
        vault.release(application, pending.as_args(), 12, USAGE_JSON, sender=carol)
    before = token.balanceOf(gov)
    vault.withdraw(gov, balance, sender=gov)
    assert token.balanceOf(gov) == before + balance
    assert token.balanceOf(vault) == 0


# ---------------------------------------------------------------- F5


def test_f5_unproven_zkml_in_batch__never_final(settlement, batches, make_batch, post, open_model, zk_model, operator,
                                                alice, sign_auth, now, chain):
    # No proof anywhere: the output is simply asserted.
    unproven = zk_receipt("f5-zk", zk_model, operator.address, now(), [1, 2, 3], outputs=[999, 999],
                          payer=alice.address)
    batch = make_batch([(receipt("f5-neighbour", open_model, operator.address, now(), payer=alice.address), operator),
                        (unproven, operator)])
    batch_id = post(batch)
    assert batches.faultOf(batch_id, batch.leaf(1)) == Fault.MODE_NOT_BATCHABLE
    with reverts_exactly(settlement.InferenceSettlementModeNotBatchable, mode=Mode.ZKML):
        batches.claimBatchReceipt(batch_id, batch.leaf(1), NO_AUTHORIZATION, b"", sender=alice)
    advance(chain, CHALLENGE_WINDOW + 1)  # nobody challenged
    assert batches.batchStatus(batch_id) == Status.FINAL

    auth = authorization(unproven)
    for a, a_signature, caller in ((NO_AUTHORIZATION, b"", alice), (auth.as_args(), sign_auth(auth, alice), operator)):
        with reverts_exactly(settlement.InferenceSettlementModeNotBatchable, mode=Mode.ZKML):
            batches.claimBatchReceipt(batch_id, batch.leaf(1), a, a_signature, sender=caller)

    assert settlement.recordOf(alice, unproven.requestId).status == Status.NONE
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=unproven.requestId, status=Status.NONE):
        settlement.requireVerifiedReceipt(unproven.as_args(), Mode.ZKML, True)
    with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=unproven.requestId, status=Status.NONE):
        settlement.requireVerifiedReceipt(unproven.as_args(), Mode.VANILLA, False)


# ---------------------------------------------------------------- F6


def test_f6_priced_batch_leaf__final_only_if_paid(settlement, token, batches, make_batch, post, open_model, operator,
                                                  alice, bob, sign_auth, now, chain):
    paid, revoked, unfunded = (receipt(f"f6-{label}", open_model, operator.address, now(), payer=alice.address,
                                       price=PRICE) for label in ("paid", "revoked", "unfunded"))
    batch = make_batch([(paid, operator), (revoked, operator), (unfunded, operator)])
    batch_id = post(batch)
    revoked_auth = authorization(revoked)
    revoked_signature = sign_auth(revoked_auth, alice)

    # The payer claims while the batch is pending: the price is collected at once, so walking away is too late.
    before = funds_of(settlement, token, alice)
    batches.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTHORIZATION, b"", sender=alice)
    assert funds_of(settlement, token, alice) == before - PRICE
    assert settlement.custodyOf(alice, paid.requestId).held == PRICE
    settlement.revokeAuthorizations(sender=alice)

    # A revoked authorization records nothing.
    with reverts_exactly(settlement.InferenceSettlementStaleAuthorization, nonce=0, currentNonce=1):
        batches.claimBatchReceipt(batch_id, batch.leaf(1), revoked_auth.as_args(), revoked_signature, sender=operator)
    # Nor does a current authorization the payer can no longer pay for.
    unfunded_auth = authorization(unfunded, nonce=1)
    token.approve(settlement, 0, sender=alice)
    assert settlement.escrowOf(alice) < PRICE
    with reverts_exactly(token.ERC20InsufficientAllowance, spender=settlement.address, allowance=0, needed=PRICE):
        batches.claimBatchReceipt(batch_id, batch.leaf(2), unfunded_auth.as_args(), sign_auth(unfunded_auth, alice),
                                  sender=operator)

    advance(chain, CHALLENGE_WINDOW + 1)
    for r in (revoked, unfunded):
        assert settlement.recordOf(alice, r.requestId).status == Status.NONE
    with reverts_exactly(settlement.InferenceSettlementStaleAuthorization, nonce=0, currentNonce=1):
        batches.claimBatchReceipt(batch_id, batch.leaf(1), revoked_auth.as_args(), revoked_signature, sender=operator)
    assert settlement.recordOf(alice, paid.requestId).status == Status.FINAL
    settlement.releaseBatchPayment(paid.as_args(), sender=bob)
    assert settlement.proceedsOf(operator) == node_share(PRICE)
    assert funds_of(settlement, token, alice) == before - PRICE


# ---------------------------------------------------------------- F7


def test_f7_proof_window_at_least_unbonding_delay__refused(settlement, staking, tee_receipt, operator, alice, gov,
                                                           sign_auth):
    delay = staking.unbondingDelay()
    margin = settlement.PROOF_REPORT_MARGIN()
    for window in (delay, delay - margin + 1):
        with reverts_exactly(settlement.InferenceSettlementProofWindowOutOfBounds, window=window,
                             unbondingDelay=delay):
            settlement.setProofWindow(window, sender=gov)
    settlement.setProofWindow(delay - margin, sender=gov)
    assert settlement.proofWindow() == delay - margin

    # The delay shrinks under the window: no new pending result until the window is lowered.
    staking.setUnbondingDelay(delay // 2, sender=gov)
    r = tee_receipt("f7-shrunk", price=0)
    auth = authorization(r, node=operator.address)
    with reverts_exactly(settlement.InferenceSettlementProofWindowOutOfBounds, window=delay - margin,
                         unbondingDelay=delay // 2):
        settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=operator)


@pytest.mark.anvil_only  # builds a block by hand (automine off)
def test_f7_node_posts_pending_and_unbonds_in_same_block__still_slashed(settlement, staking, tee_receipt,
                                                                       operator, alice, gov, reporter, sign_auth,
                                                                       chain):
    delay = staking.unbondingDelay()
    window = delay - settlement.PROOF_REPORT_MARGIN()
    settlement.setProofWindow(window, sender=gov)  # the longest window allowed
    r = tee_receipt("f7-same-block")
    auth = authorization(r, node=operator.address)
    post_data = settlement.postPending.encode_input(r.as_args(), auth.as_args(), sign_auth(auth, alice))
    unbond_data = staking.unbond.encode_input(operator, staking.sharesOf(operator, operator))

    web3 = chain.provider.web3
    chain.provider.auto_mine = False
    try:
        hashes = [web3.eth.send_transaction({"from": operator.address, "to": target.address, "data": data,
                                             "gas": 2_000_000})
                  for target, data in ((settlement, post_data), (staking, unbond_data))]
        chain.mine()
    finally:
        chain.provider.auto_mine = True
    receipts = [web3.eth.get_transaction_receipt(h) for h in hashes]
    assert [x["status"] for x in receipts] == [1, 1]
    assert receipts[0]["blockNumber"] == receipts[1]["blockNumber"]
    posted_at = chain.blocks[receipts[0]["blockNumber"]].timestamp

    unbond_receipt = chain.get_receipt(receipts[1]["transactionHash"].hex())
    unbonding_id = unbond_receipt.events.filter(staking.UnbondingStarted)[0].id
    maturity = staking.unbonding(unbonding_id).maturity
    deadline = posted_at + window
    assert maturity == posted_at + delay and maturity - deadline == settlement.PROOF_REPORT_MARGIN()
    assert settlement.recordOf(alice, r.requestId).status == Status.PENDING
    assert staking.selfBond(operator) == 0
    value_before = staking.unbondingValue(unbonding_id)

    chain.pending_timestamp = deadline + 1
    chain.mine()
    escrow_before = settlement.escrowOf(alice)
    tx = settlement.reportMissedProof(alice, r.requestId, sender=reporter)
    slashed = tx.events.filter(staking.Slashed)[0]
    assert slashed.operator == operator.address
    assert slashed.fromUnbonding == value_before * settlement.nodeSlashBps() // 10_000 > 0
    assert staking.unbondingValue(unbonding_id) == value_before - slashed.fromUnbonding
    assert settlement.escrowOf(alice) == escrow_before + PRICE
    with reverts_exactly(staking.NodeStakingNotMatured, id=unbonding_id, maturity=maturity):
        staking.withdraw(unbonding_id, sender=operator)


# ---------------------------------------------------------------- F8


@pytest.mark.parametrize("recorded_first", ["a", "b"])
def test_f8_same_batch_duplicate__charges_the_recorded_receipt(recorded_first, settlement, token, batches, make_batch,
                                                               post, open_model, operator, alice, reporter, sign_auth,
                                                               now, chain):
    """Two leaves of one batch answer the same request: whichever is claimed first is recorded, the payer is
    charged exactly its price, and the other can never be claimed nor charged."""
    a = receipt("f8-twin", open_model, operator.address, now(), payer=alice.address, price=PRICE, text="answer A")
    b = a.with_changes(price=3 * PRICE, outputHash=answer_hash("answer B"))
    batch = make_batch([(a, operator), (b, operator),
                        (receipt("f8-other", open_model, operator.address, now(), payer=alice.address), operator)])
    batch_id = post(batch)
    auth = authorization(a, max_amount=5 * PRICE)  # valid for both: same request, node, model and input
    auth_signature = sign_auth(auth, alice)
    index = {"a": 0, "b": 1}
    first, other = (a, b) if recorded_first == "a" else (b, a)

    before = funds_of(settlement, token, alice)
    batches.claimBatchReceipt(batch_id, batch.leaf(index[recorded_first]), auth.as_args(), auth_signature,
                              sender=operator)
    assert settlement.recordOf(alice, a.requestId).receiptHash == recorded_hash(settlement, first)
    for leaf in (1 - index[recorded_first], index[recorded_first]):
        with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=a.requestId):
            batches.claimBatchReceipt(batch_id, batch.leaf(leaf), auth.as_args(), auth_signature, sender=operator)
        assert batches.faultOf(batch_id, batch.leaf(leaf)) == Fault.NONE  # a duplicate is no fault of the relayer
    with reverts_exactly(batches.BatchSettlementNoFault, batchId=batch_id, requestId=a.requestId):
        batches.challenge(batch_id, batch.leaf(1 - index[recorded_first]), sender=reporter)

    advance(chain, CHALLENGE_WINDOW + 1)
    with reverts_exactly(settlement.InferenceSettlementAlreadySettled, payer=alice.address, requestId=a.requestId):
        batches.claimBatchReceipt(batch_id, batch.leaf(1 - index[recorded_first]), auth.as_args(), auth_signature,
                                  sender=operator)
    with reverts_exactly(settlement.InferenceSettlementReceiptMismatch, requestId=a.requestId):
        settlement.releaseBatchPayment(other.as_args(), sender=operator)
    settlement.releaseBatchPayment(first.as_args(), sender=operator)

    charged = before - funds_of(settlement, token, alice)
    assert charged == first.price, f"payer charged {charged} for the recorded receipt priced {first.price}"
    assert settlement.proceedsOf(operator) == node_share(first.price)
    assert settlement.requireVerifiedReceipt(first.as_args(), Mode.VANILLA, True) > 0
    with reverts_exactly(settlement.InferenceSettlementReceiptMismatch, requestId=a.requestId):
        settlement.requireVerifiedReceipt(other.as_args(), Mode.VANILLA, True)


# ---------------------------------------------------------------- F9


def test_f9_overdue_pending__not_read_as_pending(settlement, staking, tee_receipt, tee_key, operator, alice, reporter,
                                                 sign, sign_auth, chain):
    r = tee_receipt("f9-overdue", price=0)
    auth = authorization(r, node=operator.address)
    settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=operator)
    record = settlement.recordOf(alice, r.requestId)
    assert (record.status, record.settledAt) == (Status.PENDING, 0)
    advance(chain, PROOF_WINDOW + 1)  # deadline passed, nobody has called reportMissedProof yet

    assert settlement.recordOf(alice, r.requestId).status == Status.FAILED
    for must_be_final in (False, True):
        with reverts_exactly(settlement.InferenceSettlementNotVerified, requestId=r.requestId, status=Status.FAILED):
            settlement.requireVerifiedReceipt(r.as_args(), Mode.VANILLA, must_be_final)
    with reverts_exactly(settlement.InferenceSettlementProofDeadlinePassed, requestId=r.requestId):
        settlement.deliverProof(r.as_args(), sign(r, tee_key), sender=operator)

    bond_before = staking.selfBond(operator)
    settlement.reportMissedProof(alice, r.requestId, sender=reporter)
    assert staking.selfBond(operator) < bond_before
    assert settlement.recordOf(alice, r.requestId).status == Status.FAILED
    with reverts_exactly(settlement.InferenceSettlementNotPending, payer=alice.address, requestId=r.requestId):
        settlement.reportMissedProof(alice, r.requestId, sender=reporter)


# ---------------------------------------------------------------- F10


def test_f10_priced_leaf_without_payee__never_credits_zero_address(settlement, token, batches, make_batch, post,
                                                                   open_model, operator, alice, sign, sign_auth, now,
                                                                   chain):
    """A TEE-mode leaf signed by a key the TEE registry does not know: it has no node to answer for it nor to pay."""
    unknown_tee = Account.create()
    r = receipt("f10-no-payee", open_model, unknown_tee.address, now(), mode=Mode.TEE, payer=alice.address,
                price=PRICE)
    batch = make_batch([(r, unknown_tee),
                        (receipt("f10-free", open_model, operator.address, now(), payer=alice.address), operator)])
    batch_id = post(batch)
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.SIGNER_INACTIVE  # challengeable, but nobody does
    before = funds_of(settlement, token, alice)

    attempts = [(NO_AUTHORIZATION, b"", alice)]
    for node in (operator.address, ZERO_ADDRESS, unknown_tee.address):
        auth = authorization(r, node=node)
        attempts.append((auth.as_args(), sign_auth(auth, alice), operator))
    for _ in ("during the window", "after it"):
        for a, a_signature, caller in attempts:
            with reverts_exactly(batches.BatchSettlementFaultyLeaf, batchId=batch_id, requestId=r.requestId,
                                 fault=Fault.SIGNER_INACTIVE):
                batches.claimBatchReceipt(batch_id, batch.leaf(0), a, a_signature, sender=caller)
        advance(chain, CHALLENGE_WINDOW + 1)  # unchallenged

    # Nor individually or asynchronously.
    evidence = sign(r, unknown_tee)
    a, a_signature, _ = attempts[1]
    with reverts_exactly(settlement.InferenceSettlementUnknownSigner, signer=unknown_tee.address):
        settlement.settleWithAuthorization(r.as_args(), evidence, a, a_signature, sender=operator)
    with reverts_exactly(settlement.InferenceSettlementUnknownSigner, signer=unknown_tee.address):
        settlement.postPending(r.as_args(), a, a_signature, sender=operator)
    with reverts_exactly(settlement.InferenceSettlementSignerInactive, signer=unknown_tee.address):
        settlement.settle(r.as_args(), evidence, sender=alice)

    assert settlement.recordOf(alice, r.requestId).status == Status.NONE
    assert funds_of(settlement, token, alice) == before
    assert settlement.proceedsOf(ZERO_ADDRESS) == 0, "the node's share was credited to address(0)"

