"""Attack regressions for the settlement findings F1-F10.

Each test plays one attack against the current contracts and asserts the SAFE behaviour, i.e. what must hold
once the finding is fixed. On the code they were written against, every one of them fails because the attack
succeeds.
"""

import ape
import pytest
from ape.exceptions import ContractLogicError
from ape.utils import ZERO_ADDRESS
from eth_account import Account
from eth_utils import keccak

from opgkit.manifest import OutputManifest
from opgkit.receipts import ReceiptBatch, SignedReceipt, Status, zkml_evidence, zkml_proof_evidence
from opgkit.testing import advance
from settlement_helpers import (
    CHALLENGE_WINDOW, INFERENCE_BIT, OPG, PRICE, PROOF_WINDOW, RELAYER_BIT, Mode, answer_hash, authorization,
    model_spec, receipt, zk_outputs, zk_receipt,
)

NO_AUTH = (b"\x00" * 32, 0, 0, 0)
MAX_RISK = 40
PAYOUT = 1_000 * OPG
USAGE = {"inputTokens": 812, "outputTokens": 2}
USAGE_JSON = '{"inputTokens":812,"outputTokens":2}'
NODE_BOND = 50_000 * OPG  # as in conftest.py


# ---------------------------------------------------------------- helpers and fixtures


def attempt(fn, *args, **kwargs):
    """Run a transaction; return (succeeded, receipt_or_error) instead of raising on a revert."""
    try:
        return True, fn(*args, **kwargs)
    except ContractLogicError as error:
        return False, f"{type(error).__name__}({error})"


@pytest.fixture
def make_batch(settlement, sign):
    def make(items):
        signed = []
        for item in items:
            r, signer = item[0], item[1]
            signature = item[2] if len(item) > 2 else sign(r, signer)
            signed.append(SignedReceipt(r, signature))
        return ReceiptBatch(signed)

    return make


@pytest.fixture
def post(settlement, operator2):
    def post(batch, relayer=None):
        tx = settlement.postBatch(batch.root, len(batch), "ipfs://batch", sender=relayer or operator2)
        return tx.events.filter(settlement.BatchPosted)[0].batchId

    return post


@pytest.fixture
def attacker_node(staking, bob):
    """A second, fully legitimate active inference node that turns against the others (bob is funded by conftest)."""
    staking.registerOperator(INFERENCE_BIT, NODE_BOND, 0, sender=bob)
    assert staking.isActiveOperator(bob, 0)
    return bob


@pytest.fixture
def copycat_relayer(staking, bob):
    staking.registerOperator(RELAYER_BIT, NODE_BOND, 0, sender=bob)
    return bob


@pytest.fixture
def tee_receipt(open_model, tee_key, alice, heartbeat):
    def make(label, price=PRICE):
        return receipt(label, open_model, tee_key.address, heartbeat(), mode=Mode.TEE,
                       payer=alice.address if price else ZERO_ADDRESS, price=price)

    return make


@pytest.fixture(scope="module")
def vault(project, deployer, settlement, token, tee_model, gov, treasury):
    vault = deployer.deploy(project.RiskGatedVault, settlement, token, tee_model, Mode.TEE, MAX_RISK, gov)
    token.transfer(vault, 10 * PAYOUT, sender=treasury)
    return vault


def assessment(vault, application_id, model_id, signer, timestamp, score, mode=Mode.TEE):
    manifest = OutputManifest(text=str(score), usage=USAGE)
    return receipt(f"vault {application_id} {score} {mode}", model_id, signer, timestamp, mode=mode,
                   output_hash=manifest.output_hash()).with_changes(
        requestId=vault.requestIdOf(application_id), inputHash=vault.inputHashOf(application_id))


# ---------------------------------------------------------------- F1


@pytest.mark.parametrize("variant", ["vanilla", "zkml"])
def test_f1_payment_authorization_front_run__other_node_cannot_use_it(variant, settlement, token, open_model, zk_model,
                                                                     operator, alice, attacker_node, sign, sign_auth,
                                                                     now):
    """A payer's authorization names a request and a ceiling, not the node: whoever settles first takes it."""
    ceiling = 3 * PRICE
    if variant == "vanilla":
        honest = receipt("f1-front-run", open_model, operator.address, now(), payer=alice.address, price=PRICE)
        honest_evidence = sign(honest, operator)
        # The attacker answers the same request itself (any output) and prices it at the ceiling.
        stolen = honest.with_changes(signer=attacker_node.address, price=ceiling,
                                     outputHash=answer_hash("attacker's answer"))
        stolen_evidence = sign(stolen, attacker_node)
    else:
        inputs = [3, 4, 5]
        outputs = zk_outputs(inputs)
        honest = zk_receipt("f1-front-run-zk", zk_model, operator.address, now(), inputs, payer=alice.address,
                            price=PRICE)
        honest_evidence = zkml_evidence(sign(honest, operator), b"", inputs, outputs)
        # The proof is public and not bound to the signer: the attacker re-signs the honest node's result.
        stolen = honest.with_changes(signer=attacker_node.address, price=ceiling)
        stolen_evidence = zkml_evidence(sign(stolen, attacker_node), b"", inputs, outputs)

    auth = authorization(honest, max_amount=ceiling)
    auth_signature = sign_auth(auth, alice)  # seen in the mempool / the node's API

    with ape.reverts():
        settlement.settleAndPay(stolen.as_args(), stolen_evidence, auth.as_args(), auth_signature,
                                sender=attacker_node)

    before = token.balanceOf(alice)
    settlement.settleAndPay(honest.as_args(), honest_evidence, auth.as_args(), auth_signature, sender=operator)
    assert token.balanceOf(alice) == before - PRICE
    assert settlement.proceedsOf(attacker_node) == 0


# ---------------------------------------------------------------- F2


def test_f2_copycat_root__honest_relayer_not_slashed(settlement, staking, make_batch, post, open_model, operator,
                                                     operator2, copycat_relayer, now):
    batch = make_batch([(receipt(f"f2-{i}", open_model, operator.address, now()), operator) for i in range(3)])
    # The copycat sees the honest relayer's postBatch in the mempool and posts the same root first.
    copy_id = post(batch, relayer=copycat_relayer)
    honest_id = post(batch, relayer=operator2)
    assert honest_id > copy_id
    stake_before = staking.selfBond(operator2)

    slashed, _ = attempt(settlement.challengeDuplicate, honest_id, batch.leaf(0), copy_id, batch.leaf(0),
                         sender=copycat_relayer)

    assert not slashed, "challengeDuplicate against the honest batch using the copycat's copy succeeded"
    assert staking.selfBond(operator2) == stake_before
    assert settlement.batchStatus(honest_id) == Status.PENDING


# ---------------------------------------------------------------- F3


def test_f3_jailed_tee_operator__can_still_deliver_owed_proof(settlement, staking, tee_receipt, tee_key, operator,
                                                              alice, gov, reporter, sign, sign_auth, chain):
    r = tee_receipt("f3-jailed")
    auth = authorization(r)
    settlement.postPendingAndPay(r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=operator)
    evidence = sign(r, tee_key)  # valid: the key was active at the receipt's timestamp

    # The operator is slashed and jailed for something unrelated.
    staking.grantRole(staking.SLASHER_ROLE(), gov, sender=gov)
    staking.slash(operator, 100, keccak(text="f3 unrelated offence"), gov, sender=gov)
    assert not staking.isActiveOperator(operator, 1)

    delivered, outcome = attempt(settlement.deliverProof, r.as_args(), evidence, sender=operator)

    bond_before = staking.selfBond(operator)
    advance(chain, PROOF_WINDOW + 1)
    attempt(settlement.reportMissedProof, r.requestId, sender=reporter)
    slashed_again = staking.selfBond(operator) < bond_before

    assert delivered and not slashed_again, (
        f"deliverProof of a valid TEE signature refused once the operator is jailed ({outcome}); "
        f"reportMissedProof then slashed it a second time: {slashed_again}")
    assert settlement.verifiedOutput(r.requestId).status == Status.FINAL


# ---------------------------------------------------------------- F4


def test_f4_request_squatting__third_party_cannot_occupy_consumer_request(vault, settlement, models, token, gov, bob,
                                                                        tee_model, tee_key, attacker_node, sign,
                                                                        heartbeat, now):
    application = vault.open(bob, PAYOUT, sender=gov).events.filter(vault.ApplicationOpened)[0].applicationId
    request = vault.requestIdOf(application)

    # The attacker registers a throw-away model and settles a free VANILLA answer under the vault's request id.
    tx = models.register(model_spec("f4-throwaway", [Mode.VANILLA]), sender=attacker_node)
    junk_model = tx.events.filter(models.ModelRegistered)[0].modelId
    squat = receipt("f4-squat", junk_model, attacker_node.address, now()).with_changes(requestId=request)
    settlement.settle(squat.as_args(), sign(squat, attacker_node), sender=attacker_node)

    real = assessment(vault, application, tee_model, tee_key.address, heartbeat(), 12)
    settled, outcome = attempt(settlement.settle, real.as_args(), sign(real, tee_key), sender=bob)
    assert settled, f"the real TEE assessment can no longer be settled: {outcome}"

    before = token.balanceOf(bob)
    vault.release(application, real.as_args(), 12, USAGE_JSON, sender=bob)
    assert token.balanceOf(bob) == before + PAYOUT


# ---------------------------------------------------------------- F5


def test_f5_unproven_zkml_in_batch__never_final(settlement, make_batch, post, open_model, zk_model, operator, now,
                                                chain):
    # No proof anywhere: the output is simply asserted.
    unproven = zk_receipt("f5-zk", zk_model, operator.address, now(), [1, 2, 3], outputs=[999, 999])
    batch = make_batch([(receipt("f5-neighbour", open_model, operator.address, now()), operator),
                        (unproven, operator)])
    batch_id = post(batch)
    advance(chain, CHALLENGE_WINDOW + 1)  # nobody challenged

    attempt(settlement.claimBatchReceipt, batch_id, batch.leaf(1), NO_AUTH, b"", sender=operator)

    out = settlement.verifiedOutput(unproven.requestId)
    assert not (out.status == Status.FINAL and out.mode == Mode.ZKML), \
        "an unproven ZKML receipt became FINAL with mode ZKML through an unchallenged batch"
    with ape.reverts():
        settlement.requireVerified(unproven.requestId, Mode.ZKML, True)


# ---------------------------------------------------------------- F6


def test_f6_priced_batch_leaf__final_only_if_paid(settlement, make_batch, post, open_model, operator, alice,
                                                  sign_auth, now, chain):
    r = receipt("f6-priced", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    batch = make_batch([(r, operator), (receipt("f6-free", open_model, operator.address, now()), operator)])
    batch_id = post(batch)
    auth = authorization(r)
    auth_signature = sign_auth(auth, alice)
    settlement.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), auth_signature, sender=alice)

    settlement.revokeAuthorizations(sender=alice)  # the payer walks away while the batch is pending
    advance(chain, CHALLENGE_WINDOW + 1)
    charged, outcome = attempt(settlement.claimBatchReceipt, batch_id, batch.leaf(0), auth.as_args(), auth_signature,
                               sender=operator)
    assert not charged, "sanity: the revoked authorization should not charge"

    paid = settlement.proceedsOf(operator) > 0
    status = settlement.verifiedOutput(r.requestId).status
    assert paid or status != Status.FINAL, \
        f"priced receipt is FINAL (status {status}) although its node was never paid ({outcome})"


# ---------------------------------------------------------------- F7


def test_f7_proof_window_at_least_unbonding_delay__refused(settlement, staking, gov):
    delay = staking.unbondingDelay()
    with ape.reverts():
        settlement.setProofWindow(delay, sender=gov)


# ---------------------------------------------------------------- F8


def test_f8_same_batch_duplicate__charges_the_recorded_receipt(settlement, token, make_batch, post, open_model,
                                                               operator, alice, sign_auth, now, chain):
    a = receipt("f8-twin", open_model, operator.address, now(), payer=alice.address, price=PRICE, text="answer A")
    b = a.with_changes(price=3 * PRICE, outputHash=answer_hash("answer B"))
    batch = make_batch([(a, operator), (b, operator),
                        (receipt("f8-other", open_model, operator.address, now()), operator)])
    batch_id = post(batch)
    auth = authorization(a, max_amount=5 * PRICE)
    auth_signature = sign_auth(auth, alice)

    settlement.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), auth_signature, sender=operator)
    assert settlement.verifiedOutput(a.requestId).outputHash == a.outputHash
    advance(chain, CHALLENGE_WINDOW + 1)

    before = token.balanceOf(alice) + settlement.escrowOf(alice)
    attempt(settlement.claimBatchReceipt, batch_id, batch.leaf(1), auth.as_args(), auth_signature, sender=operator)
    attempt(settlement.claimBatchReceipt, batch_id, batch.leaf(0), auth.as_args(), auth_signature, sender=operator)
    charged = before - (token.balanceOf(alice) + settlement.escrowOf(alice))

    assert settlement.verifiedOutput(a.requestId).outputHash == a.outputHash
    assert charged == a.price, f"payer charged {charged} for recorded receipt A priced {a.price} (B is {b.price})"


# ---------------------------------------------------------------- F9


def test_f9_overdue_pending__not_read_as_pending(settlement, tee_receipt, operator, chain):
    r = tee_receipt("f9-overdue", price=0)
    settlement.postPending(r.as_args(), sender=operator)
    advance(chain, PROOF_WINDOW + 1)  # deadline passed, nobody has called reportMissedProof yet

    status = settlement.verifiedOutput(r.requestId).status
    assert status != Status.PENDING, "an overdue asynchronous result still reads as PENDING"
    with ape.reverts():
        settlement.requireVerified(r.requestId, Mode.VANILLA, False)


# ---------------------------------------------------------------- F10


def test_f10_priced_leaf_without_payee__never_credits_zero_address(settlement, make_batch, post, open_model, operator,
                                                                   alice, sign_auth, now, chain):
    """A TEE-mode leaf signed by a key the TEE registry does not know: payeeOf returns (0, 0)."""
    unknown_tee = Account.create()
    r = receipt("f10-no-payee", open_model, unknown_tee.address, now(), mode=Mode.TEE, payer=alice.address,
                price=PRICE)
    batch = make_batch([(r, unknown_tee), (receipt("f10-free", open_model, operator.address, now()), operator)])
    batch_id = post(batch)
    advance(chain, CHALLENGE_WINDOW + 1)  # unchallenged
    auth = authorization(r)

    attempt(settlement.claimBatchReceipt, batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, alice),
            sender=operator)

    assert settlement.proceedsOf(ZERO_ADDRESS) == 0, "the node's share was credited to address(0)"
    assert settlement.stakerRewardsOwed(ZERO_ADDRESS) == 0, "the stakers' share was owed to address(0)"
