"""Attacks found by the outside review of settlement v2, each named after its finding. Every test performs the
attack and asserts the guarantee; each failed on the code the review was run against (see the commit that adds
this file) and passes since the fix."""

import pytest
from eth_account import Account
from eth_utils import keccak

from opgkit.manifest import OutputManifest
from opgkit.receipts import NO_AUTHORIZATION, Fault, ReceiptBatch, SignedReceipt, Status
from opgkit.testing import advance, reverts
from settlement_helpers import (
    CHALLENGE_WINDOW, HOUR, OPG, PCR, PRICE, RELAYER_BIT, Mode, authorization, model_spec, receipt,
)

MAX_UINT = 2**256 - 1
USAGE = {"inputTokens": 812, "outputTokens": 2}
USAGE_JSON = '{"inputTokens":812,"outputTokens":2}'
PAYOUT = 1_000 * OPG
RELAYER_BOND = 50_000 * OPG
TEE_ROLE = 1


def batch_of(*signed):
    return ReceiptBatch([SignedReceipt(r, s) for r, s in signed])


def post(batches, batch, relayer):
    tx = batches.postBatch(batch.root, len(batch), "ipfs://batch", sender=relayer)
    return tx.events.filter(batches.BatchPosted)[0].batchId


@pytest.fixture(scope="module")
def vault(project, deployer, settlement, token, tee_model, gov, treasury):
    vault = deployer.deploy(project.RiskGatedVault, settlement, token, tee_model, Mode.TEE, 40, gov)
    token.transfer(vault, 10 * PAYOUT, sender=treasury)
    return vault


def test_h1_withheld_fabricated_leaf__cannot_be_claimed_with_the_payers_authorization(
        vault, settlement, batches, staking, tee_model, tee_key, operator, gov, bob, chain, now, sign, sign_auth,
        heartbeat):
    """The applicant stakes as a relayer, commits a fabricated TEE 'assessment' (score 0, a signature by no one)
    for its application's predictable request and input, withholds the data so nobody can challenge, and after the
    window front-runs the node's postPending with a claim using the owner's authorization copied from the mempool.
    The claim is refused (the signature is checked at claim time) and the honest answer still settles."""
    app = vault.open(bob, PAYOUT, sender=gov).events.filter(vault.ApplicationOpened)[0].applicationId
    staking.registerOperator(RELAYER_BIT, RELAYER_BOND, 0, sender=bob)
    bind = dict(requestId=vault.requestIdOf(app), inputHash=vault.inputHashOf(app))
    fake = receipt("fake", tee_model, tee_key.address, now() - 5, mode=Mode.TEE, payer=gov.address,
                   output_hash=OutputManifest(text="0", usage=USAGE).output_hash()).with_changes(**bind)
    forged = bytes(Account.from_key(keccak(text="not the tee")).unsafe_sign_hash(keccak(b"x")).signature)
    batch = batch_of((fake, forged))
    batch_id = post(batches, batch, bob)
    advance(chain, CHALLENGE_WINDOW + 1)

    honest = receipt("honest", tee_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=gov.address,
                     output_hash=OutputManifest(text="90", usage=USAGE).output_hash()).with_changes(**bind)
    auth = authorization(honest, node=operator.address)
    auth_sig = sign_auth(auth, gov)
    with reverts(batches.BatchSettlementBadSignature, signer=tee_key.address):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), auth_sig, sender=bob)
    assert settlement.recordOf(gov, fake.requestId).status == Status.NONE
    advance(chain, 1)
    settlement.postPending(honest.as_args(), auth.as_args(), auth_sig, sender=operator)
    settlement.deliverProof(honest.as_args(), sign(honest, tee_key), sender=bob)
    with reverts(settlement.InferenceSettlementReceiptMismatch):
        vault.release(app, fake.as_args(), 0, USAGE_JSON, sender=bob)


def test_m2_erc1271_wallet__owners_authorization_for_another_payer_cannot_charge_it(
        project, deployer, settlement, token, open_model, operator, alice, treasury, sign, sign_auth, now):
    """A wallet that accepts whatever its owner signed must not be charged under an authorization its owner signed
    for its own account: the authorization names its payer."""
    wallet = deployer.deploy(project.ExploitOwnerWallet, alice)
    token.transfer(wallet, 100 * OPG, sender=treasury)
    wallet.execute(token, token.approve.encode_input(settlement, MAX_UINT), sender=alice)
    r = receipt("1271", open_model, operator.address, now(), payer=alice.address, price=PRICE)
    auth = authorization(r)
    auth_sig = sign_auth(auth, alice)
    settlement.settleWithAuthorization(r.as_args(), sign(r, operator), auth.as_args(), auth_sig, sender=operator)

    replay = r.with_changes(payer=wallet.address)
    with reverts(settlement.InferenceSettlementAuthorizationMismatch, requestId=r.requestId):
        settlement.settleWithAuthorization(replay.as_args(), sign(replay, operator), auth.as_args(), auth_sig,
                                           sender=operator)
    assert token.balanceOf(wallet) == 100 * OPG
    # The wallet's own authorization (naming it as payer, signed by its owner) works as ERC-1271 intends.
    own = authorization(replay)
    settlement.settleWithAuthorization(replay.as_args(), sign(replay, operator), own.as_args(), sign_auth(own, alice),
                                       sender=operator)
    assert token.balanceOf(wallet) == 100 * OPG - PRICE


def test_m2_authorization_names_the_mode__weaker_answer_cannot_burn_the_request(
        settlement, open_model, tee_key, operator, alice, bob, sign, sign_auth, heartbeat):
    """An authorized TEE operator that is also an inference node cannot answer a TEE request with VANILLA."""
    tee = receipt("mode", open_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address)
    auth = authorization(tee, node=operator.address)
    vanilla = tee.with_changes(mode=Mode.VANILLA, signer=operator.address)
    with reverts(settlement.InferenceSettlementAuthorizationMismatch, requestId=tee.requestId):
        settlement.settleWithAuthorization(vanilla.as_args(), sign(vanilla, operator), auth.as_args(),
                                           sign_auth(auth, alice), sender=bob)


def test_m3_model_deprecated_before_posting__receipt_signed_while_live__relayer_not_slashed(
        batches, staking, models, operator, operator2, bob, sign, now, chain):
    """The owner of a model deprecates it just before an honest relayer's post lands: the receipts were signed while
    the model was live, so the batch is not faulty and the owner cannot collect a reporter reward."""
    bait = models.register(model_spec("bait", [Mode.VANILLA]), sender=bob).events.filter(
        models.ModelRegistered)[0].modelId
    advance(chain, 1)
    r = receipt("bait", bait, operator.address, now(), payer=bob.address)
    batch = batch_of((r, sign(r, operator)))
    advance(chain, 1)
    models.deprecate(bait, sender=bob)
    advance(chain, 12)
    batch_id = post(batches, batch, operator2)
    stake_before = staking.selfBond(operator2)
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.NONE
    with reverts(batches.BatchSettlementNoFault):
        batches.challenge(batch_id, batch.leaf(0), sender=bob)
    assert staking.selfBond(operator2) == stake_before


def test_m3_model_deprecated_before_signing__still_a_fault(batches, models, operator, operator2, bob, sign, now, chain):
    bait = models.register(model_spec("dead", [Mode.VANILLA]), sender=bob).events.filter(
        models.ModelRegistered)[0].modelId
    advance(chain, 1)
    models.deprecate(bait, sender=bob)
    advance(chain, 1)
    r = receipt("dead", bait, operator.address, now(), payer=bob.address)
    batch = batch_of((r, sign(r, operator)))
    advance(chain, 1)
    assert batches.faultOf(post(batches, batch, operator2), batch.leaf(0)) == Fault.MODEL_DEPRECATED


@pytest.mark.anvil_only  # builds a block by hand (automine off)
def test_l1_receipt_age_change_later_in_the_posting_block__does_not_judge_the_batch(
        batches, open_model, operator, operator2, gov, sign, now, chain):
    """A setMaxReceiptAge mined after a postBatch in the same block (timelock operations are executable by anyone,
    who can order them behind a post) does not apply to that batch."""
    advance(chain, 3 * HOUR)  # the model and the node are older than the receipt
    r = receipt("aged", open_model, operator.address, now() - 2 * HOUR, payer=operator.address)
    batch = batch_of((r, sign(r, operator)))
    web3 = chain.provider.web3
    chain.provider.make_request("evm_setAutomine", [False])
    try:
        h1 = web3.eth.send_transaction({"from": operator2.address, "to": batches.address, "gas": 500_000,
                                        "data": batches.postBatch.encode_input(batch.root, 1, "ipfs://b")})
        h2 = web3.eth.send_transaction({"from": gov.address, "to": batches.address, "gas": 200_000,
                                        "data": batches.setMaxReceiptAge.encode_input(HOUR)})
        chain.provider.make_request("evm_mine", [])
    finally:
        chain.provider.make_request("evm_setAutomine", [True])
    first, second = web3.eth.get_transaction_receipt(h1), web3.eth.get_transaction_receipt(h2)
    assert first.status == second.status == 1
    assert (first.blockNumber, first.transactionIndex) < (second.blockNumber, second.transactionIndex)
    assert batches.faultOf(batches.batchCount(), batch.leaf(0)) == Fault.NONE


def test_l2_raised_minimum_stake__reaches_history_through_refresh(staking, operator, bob, gov, now, chain):
    """Governance raises the inference minimum above the node's bond: anyone writes that into its history from now
    on, and the node's past activity is unchanged."""
    before = now()
    staking.setMinimumStake(0, 60_000 * OPG, sender=gov)
    advance(chain, 1)
    staking.refreshActivity(operator, sender=bob)
    assert not staking.wasActiveOperator(operator, 0, now())
    assert staking.wasActiveOperator(operator, 0, before)
    with reverts(staking.NodeStakingNotOperator, account=bob.address):
        staking.refreshActivity(bob, sender=bob)


def test_l3_unknown_model_fault__not_cleared_by_registering_it_later(batches, models, operator, operator2, sign,
                                                                      now, chain):
    """A relayer that committed a leaf for an unregistered model cannot register it when challenged."""
    spec = model_spec("ghost", [Mode.VANILLA])
    ghost = models.modelIdOf(operator2, spec["contentHash"], spec["zkVerifier"], spec["verifyingKeyDigest"])
    r = receipt("ghost", ghost, operator.address, now(), payer=operator.address)
    batch = batch_of((r, sign(r, operator)))
    advance(chain, 1)
    batch_id = post(batches, batch, operator2)
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.UNKNOWN_MODEL
    advance(chain, 1)
    models.register(spec, sender=operator2)
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.UNKNOWN_MODEL


def test_l4_unregistered_signer__never_owed_a_staker_share(settlement, batches, open_model, operator2, alice, now,
                                                            chain, sign):
    """A leaf nobody challenged must not pay an unregistered signer, whose stakers' share would have no pool to go
    to: the leaf is faulty (its signer was never active), so it is refused at claim and nothing is owed to it."""
    ghost = Account.from_key(keccak(text="unregistered signer"))
    r = receipt("ghost pay", open_model, ghost.address, now() - 1, payer=alice.address, price=PRICE)
    batch = batch_of((r, sign(r, ghost)))
    batch_id = post(batches, batch, operator2)
    advance(chain, CHALLENGE_WINDOW + 1)
    with reverts(batches.BatchSettlementFaultyLeaf, batchId=batch_id, requestId=r.requestId,
                     fault=Fault.SIGNER_INACTIVE):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), NO_AUTHORIZATION, b"", sender=alice)


def test_l5_vault_application_for_zero_recipient__refused(vault, gov):
    with reverts(vault.RiskGatedVaultZeroRecipient):
        vault.open("0x0000000000000000000000000000000000000000", PAYOUT, sender=gov)


def test_same_second_slash__pending_tee_receipt_must_predate_its_post(settlement, tee_model, tee_key, operator,
                                                                       alice, sign_auth, chain):
    """A TEE result posted in its own timestamp's second could be made undeliverable by a slash later in that
    second (a second slash for one fault): posting requires a timestamp strictly before the block."""
    t = chain.blocks.head.timestamp + 10
    chain.pending_timestamp = t
    r = receipt("same second", tee_model, tee_key.address, t, mode=Mode.TEE, payer=alice.address)
    auth = authorization(r, node=operator.address)
    with reverts(settlement.InferenceSettlementReceiptFromFuture, timestamp=t):
        settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=operator)


# ---------------------------------------------------------------- second review

def test_review2_m1_withheld_leaf_by_revoked_tee_key__never_recorded(vault, settlement, batches, staking, tees, token,
                                                                       tee_model, tee_key, operator, gov, bob, chain,
                                                                       now, sign, sign_auth):
    """A leaf whose TEE key was inactive at its timestamp (its measurement revoked because the enclave is broken, so
    the key is in the attacker's hands) is committed in a withheld batch; after the window nobody can challenge it,
    and the attacker claims it with the owner's authorization copied from the mempool (it names the operator, not
    the key). Every fault is checked at claim, so it is never recorded and the vault pays nothing."""
    app = vault.open(bob, PAYOUT, sender=gov).events.filter(vault.ApplicationOpened)[0].applicationId
    tees.revokeMeasurement(PCR, sender=gov)
    advance(chain, 10)
    staking.registerOperator(RELAYER_BIT, RELAYER_BOND, 0, sender=bob)
    bind = dict(requestId=vault.requestIdOf(app), inputHash=vault.inputHashOf(app))
    fake = receipt("revoked", tee_model, tee_key.address, now() - 5, mode=Mode.TEE, payer=gov.address,
                   output_hash=OutputManifest(text="0", usage=USAGE).output_hash()).with_changes(**bind)
    batch = batch_of((fake, sign(fake, tee_key)))
    batch_id = post(batches, batch, bob)
    assert batches.faultOf(batch_id, batch.leaf(0)) == Fault.SIGNER_INACTIVE
    advance(chain, CHALLENGE_WINDOW + 1)
    auth = authorization(fake, node=operator.address)
    with reverts(batches.BatchSettlementFaultyLeaf, batchId=batch_id, requestId=fake.requestId,
                     fault=Fault.SIGNER_INACTIVE):
        batches.claimBatchReceipt(batch_id, batch.leaf(0), auth.as_args(), sign_auth(auth, gov), sender=bob)
    assert settlement.recordOf(gov, fake.requestId).status == Status.NONE
    with reverts(settlement.InferenceSettlementNotVerified):
        vault.release(app, fake.as_args(), 0, USAGE_JSON, sender=bob)


def test_review2_l1_history_behind_live_activity__pending_refused_not_slashed_later(
        settlement, staking, tee_model, tee_key, operator, alice, bob, gov, sign_auth, heartbeat):
    """Governance raises then lowers a minimum: the node is active now but its recorded history (refreshed while it
    was below the minimum) says inactive. postPending judges the key as deliverProof will, so it refuses the result
    instead of accepting one whose evidence could never be delivered (and slashing the node for it)."""
    staking.setMinimumStake(TEE_ROLE, 60_000 * OPG, sender=gov)
    staking.refreshActivity(operator, sender=bob)
    staking.setMinimumStake(TEE_ROLE, 20_000 * OPG, sender=gov)
    assert staking.isActiveOperator(operator, TEE_ROLE)
    r = receipt("lowered", tee_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address)
    auth = authorization(r, node=operator.address)
    with reverts(settlement.InferenceSettlementSignerInactive, signer=tee_key.address, timestamp=r.timestamp):
        settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=operator)
    staking.refreshActivity(operator, sender=bob)  # anyone brings the history up to date; then it is accepted
    r = receipt("lowered again", tee_model, tee_key.address, heartbeat(), mode=Mode.TEE, payer=alice.address)
    auth = authorization(r, node=operator.address)
    settlement.postPending(r.as_args(), auth.as_args(), sign_auth(auth, alice), sender=operator)
