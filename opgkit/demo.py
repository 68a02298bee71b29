"""The protocol's story on a local chain, end to end, with real contracts, keys and signatures.

Each chapter is a method of ``Story`` that acts and then reports what happened through ``say``. The
chapters build on each other in the order of ``Story.CHAPTERS``. Steps that print diagnostics of their own
(EZKL, compiling the generated verifier) run inside ``quiet()``, which the demo script points at its log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
from pathlib import Path
from dataclasses import dataclass
from datetime import timedelta

from ape import chain, project
from ape.exceptions import ApeException
from ape.utils import ZERO_ADDRESS
from eth_account import Account
from eth_utils import keccak
from web3.exceptions import ContractCustomError

from opgkit import PROJECT_ROOT, twin_model
from opgkit.batch_document import BatchDocument, check_publish_directory, publish
from opgkit.attestor import RegistrationRequest, chain_time, registration_statement
from opgkit.deploy import DAY, OPG, ProtocolParameters, Suite, deploy_all
from opgkit.fee_monitor import AlertRules, Checkpoint, Snapshot, event_line, percent, report_new_events
from opgkit.manifest import manifest_from_response
from opgkit.nitro import NITRO_TEE_TYPE, AttestationRefused, Binding, nitro_measurement
from opgkit.nitro import verify_document as verify_attestation_document
from opgkit.nitro.local_ca import LocalNitroCA, pcrs_for
from opgkit.operators.launch import json_lines, run_operator, run_script
from opgkit.receipt_verifier import ReceiptDocument, document_json, verify_document
from opgkit.receipts import (
    NO_AUTHORIZATION, Fault, Mode, PaymentAuthorization, Receipt, ReceiptBatch, SignedReceipt, Status, sign_payment,
    sign_receipt, zkml_evidence, zkml_proof_evidence,
)
from opgkit.testing import advance
from opgkit.zkml import pipeline
from opgkit.zkml.models import LIQUIDATION_RISK, RISKY_POSITION, SAFE_POSITION
from opgkit.zkml.onchain import deploy_model

NITRO = NITRO_TEE_TYPE
ENCLAVE_PCRS = pcrs_for("opg demo enclave image v1")
ENCLAVE_MEASUREMENT = nitro_measurement(ENCLAVE_PCRS[0], ENCLAVE_PCRS[1], ENCLAVE_PCRS[2])
TEE_KEY = Account.from_key(keccak(text="opg demo tee key"))
INFERENCE, INFERENCE_AND_TEE, RELAYER = 1, 1 | 2, 4
FOR = 1
RELAYER_INDEX, CHALLENGER_INDEX = 2, 5  # the Cast's relayer and challenger among the test accounts (TEST::n)
RAISED_PROTOCOL_FEE = 8 * 10**16
ALERT_ABOVE = 7 * 10**16
MAX_RISK_SCORE = 40
ENDPOINT = "https://tee.node.example:8443"
TLS_CERT_HASH = keccak(text="demo tls certificate")
IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(48))).decode()


@dataclass(frozen=True)
class Cast:
    """Who plays which part (ape accounts)."""

    deployer: object
    node: object
    relayer: object
    payer: object
    model_owner: object
    challenger: object
    trader: object
    beneficiary: object
    attacker: object

    @classmethod
    def from_accounts(cls, accounts) -> "Cast":
        return cls(*accounts[:9])


def opg(amount: int) -> str:
    return f"{amount / OPG:,.4f}".rstrip("0").rstrip(".") + " OPG"


class Story:
    CHAPTERS = ("deploy", "stake", "govern", "register", "settle_individually", "batch_and_challenge",
                "consumer_vault", "consumer_callbacks", "adversary_refused", "zkml_liquidation", "audit_receipt", "twin_market",
                "monitor_fees", "execution_history")

    def __init__(self, cast: Cast, say, params: ProtocolParameters = ProtocolParameters(), *,
                 quiet=contextlib.nullcontext):
        """``say`` prints one report line; ``quiet()`` is a context manager the noisy steps run inside."""
        self.cast, self.say, self.params, self.quiet = cast, say, params, quiet
        self.suite: Suite | None = None
        self.start_block = chain.blocks.head.number

    def run(self) -> None:
        for number, chapter in enumerate(self.CHAPTERS, start=1):
            self.say(f"\n{number}. {getattr(self, chapter).__doc__}")
            getattr(self, chapter)()

    # ---------------------------------------------------------------- chapters

    def deploy(self):
        """Deploy the protocol (the deploy script's own code path)"""
        self.suite = deploy_all(self.cast.deployer, self.cast.deployer.address, self.params)
        for deployment in self.suite.deployments:
            self.say(f"   {deployment.name:<22} {deployment.contract.address}")
        self.say("   wiring verified: the timelock is the only admin; settlement and batches may slash")

    def stake(self):
        """Operators bond OPG: an inference + TEE node, a settlement relayer and a second inference node"""
        token, staking = self.suite["OPGToken"], self.suite["NodeStaking"]
        for account, roles, bond in ((self.cast.node, INFERENCE_AND_TEE, 100_000 * OPG),
                                     (self.cast.relayer, RELAYER, 100_000 * OPG),
                                     (self.cast.attacker, INFERENCE, 10_000 * OPG)):
            token.transfer(account, bond + 10_000 * OPG, sender=self.cast.deployer)
            token.approve(staking, 2**256 - 1, sender=account)
            staking.registerOperator(roles, bond, 1_000, sender=account)
        for account in (self.cast.payer, self.cast.trader):
            token.transfer(account, 10_000 * OPG, sender=self.cast.deployer)
        advance(chain, 1)
        self.say(f"   node {self.cast.node.address} bonds {opg(staking.selfBond(self.cast.node))} "
                 f"(voting power {opg(staking.getVotes(self.cast.node))})")
        self.say(f"   relayer {self.cast.relayer.address} bonds {opg(staking.selfBond(self.cast.relayer))}")
        self.say(f"   node {self.cast.attacker.address} bonds {opg(staking.selfBond(self.cast.attacker))} "
                 f"(it turns attacker in chapter {self.CHAPTERS.index('adversary_refused') + 1})")

    def govern(self):
        """Stake-weighted governance approves an enclave measurement and schedules a fee rise"""
        governor, tees, market = self.suite["OPGGovernor"], self.suite["TEERegistry"], self.suite["TwinMarket"]
        targets = [tees.address, tees.address, market.address]
        calldatas = [
            tees.addTeeType.encode_input(NITRO, "AWS Nitro"),
            tees.approveMeasurement.encode_input(ENCLAVE_MEASUREMENT, NITRO, 1),
            market.setFees.encode_input(RAISED_PROTOCOL_FEE, self.params.twin_subject_fee),
        ]
        description = "Approve the demo enclave; raise the twin protocol fee to 8%"
        values, description_hash = [0, 0, 0], keccak(text=description)
        governor.propose(targets, values, calldatas, description, sender=self.cast.node)
        proposal = governor.hashProposal(targets, values, calldatas, description_hash)
        advance(chain, self.params.voting_delay + 1)
        governor.castVote(proposal, FOR, sender=self.cast.node)
        advance(chain, self.params.voting_period)
        governor.queue(targets, values, calldatas, description_hash, sender=self.cast.node)
        advance(chain, self.params.timelock_delay)
        governor.execute(targets, values, calldatas, description_hash, sender=self.cast.node)
        votes_for = governor.proposalVotes(proposal)[1]
        self.say(f"   proposal passed with {opg(votes_for)} for; executed through the timelock after "
                 f"{(self.params.voting_delay + self.params.voting_period + self.params.timelock_delay) // DAY} days")
        self.say(f"   measurement 0x{ENCLAVE_MEASUREMENT.hex()[:16]}… approved; twin fee rise scheduled")

    def register(self):
        """A model owner registers two models; an attestor checks the node's enclave evidence and the node registers its TEE"""
        models, tees = self.suite["ModelRegistry"], self.suite["TEERegistry"]
        self.chat_model = self._register_model("chat", allowed=1 | 2, minimum=Mode.VANILLA)
        self.risk_model = self._register_model("risk-scorer", allowed=2, minimum=Mode.TEE)
        self._attest_and_register(tees)
        self.tee_operator = tees.payeeOf(TEE_KEY.address)[0]
        self.say(f"   model chat        0x{self.chat_model.hex()[:16]}…  VANILLA or TEE, "
                 f"{opg(models.model(self.chat_model).price)} per inference")
        self.say(f"   model risk-scorer 0x{self.risk_model.hex()[:16]}…  TEE or better, "
                 f"{opg(models.model(self.risk_model).price)} per inference")
        self.say(f"   TEE key {TEE_KEY.address} (operator {self.tee_operator}) active now: "
                 f"{tees.isActive(TEE_KEY.address, chain.blocks.head.timestamp)}")

    def _attest_and_register(self, tees):
        """The enclave attests (a local Nitro-shaped CA stands in for AWS), the attestor checks and signs, the node
        registers: each through its own `ape run` process, as operators run them."""
        folder = PROJECT_ROOT / "build" / "demo" / "tee"
        folder.mkdir(parents=True, exist_ok=True)
        ca = LocalNitroCA.create(chain_time(tees) - timedelta(days=1))
        root = folder / "local-nitro-root.pem"
        root.write_bytes(ca.root_pem())
        node = self.cast.node.address
        binding = Binding(chain.provider.chain_id, tees.address, node, tees.nonces(node), TLS_CERT_HASH)
        document = folder / "enclave.cbor"
        document.write_bytes(ca.issue(pcrs=ENCLAVE_PCRS, public_key=b"\x04" + TEE_KEY._key_obj.public_key.to_bytes(),
                                      user_data=binding.user_data(), at=chain_time(tees)))
        self.say(f"   the enclave's attestation document: PCR0–2 of the approved image, its key {TEE_KEY.address} and "
                 f"TLS certificate, bound to the node's registration nonce {binding.nonce} (local Nitro CA standing in "
                 "for AWS)")
        self._refused_attestation(tees, ca, binding)
        request = ["--endpoint", ENDPOINT, "--registry", tees.address, "--trusted-root", str(root),
                   "--network", chain.provider.uri]
        signature = folder / "attestor.json"
        self._script("attestor", "sign", str(document), "--operator", node, *request, "--account", "TEST::0",
                     "--out", str(signature))
        self.say(f"   attestor {self.cast.deployer.address} (ape run attestor sign): COSE ES384 signature, chain to "
                 "the root, PCRs, binding and the approved measurement all checked; statement signed")
        self._script("tee", "register", str(document), "--signature", str(signature), *request, "--account", "TEST::1")
        self.say("   node (ape run tee register): quorum of 1 gathered, registerTee sent")

    def _refused_attestation(self, tees, ca, binding):
        rogue = Account.from_key(keccak(text="opg demo rogue enclave key"))
        pcrs = pcrs_for("opg demo enclave image, patched")
        raw = ca.issue(pcrs=pcrs, public_key=b"\x04" + rogue._key_obj.public_key.to_bytes(),
                       user_data=binding.user_data(), at=chain_time(tees))
        request = RegistrationRequest(self.cast.node.address, ENDPOINT, self.cast.node.address)
        try:
            registration_statement(verify_attestation_document(raw, root=ca.root, at=chain_time(tees)), request, tees)
        except AttestationRefused as refusal:
            self.say(f"   a document of a patched image is refused by the attestor's checks: {refusal.refusal.name}")
            return
        raise ApeException("the attestor accepted a document of an unapproved image")

    def _script(self, *args: str) -> str:
        result = run_script(["ape", "run", *args])
        if result.returncode != 0:
            raise ApeException(f"ape run {' '.join(args[:2])} failed (exit {result.returncode}): "
                               f"{(result.stdout + result.stderr).strip()[-800:]}")
        return result.stdout

    def settle_individually(self):
        """A payer authorizes the TEE's operator to answer one request; the signed answer settles and pays at once"""
        settlement, payer = self.suite["InferenceSettlement"], self.cast.payer
        self.suite["OPGToken"].approve(settlement, 2**256 - 1, sender=payer)
        settlement.deposit(10 * OPG, sender=payer)
        self.response = {"text": "A lighthouse on a cliff at dusk.", "images": [f"data:image/png;base64,{IMAGE}"],
                         "usage": {"inputTokens": 14, "outputTokens": 9}}
        manifest = manifest_from_response(self.response)
        self.tee_receipt = Receipt(
            requestId=keccak(text="demo request 1"), modelId=self.chat_model, inputHash=keccak(text="Draw a lighthouse"),
            outputHash=manifest.output_hash(), mode=Mode.TEE, signer=TEE_KEY.address,
            timestamp=chain.blocks.head.timestamp, payer=payer.address, price=2 * OPG,
        )
        self.tee_signature = sign_receipt(settlement, self.tee_receipt, TEE_KEY.key)
        authorization = PaymentAuthorization.for_receipt(self.tee_receipt, chain.pending_timestamp + 600,
                                                         node=self.tee_operator, max_amount=3 * OPG)
        tx = settlement.settleWithAuthorization(
            self.tee_receipt.as_args(), self.tee_signature, authorization.as_args(),
            sign_payment(settlement, authorization, payer.private_key), sender=self.cast.node)
        charged = tx.events.filter(settlement.PaymentCharged)[0]
        split = tx.events.filter(settlement.PaymentSplit)[0]
        record = settlement.recordOf(payer, self.tee_receipt.requestId)
        self.say(f"   the payer's authorization names the TEE's operator {self.tee_operator[:10]}…, the chat model "
                 f"and the prompt's hash, for at most {opg(authorization.maxAmount)}")
        self.say(f"   manifest covers the text, {len(manifest.images)} image ({manifest.images[0].entry()['size']} bytes) "
                 "and usage")
        self.say(f"   status {Status(record.status).name}, mode {Mode(record.mode).name}, settled in one transaction "
                 f"by the operator ({tx.gas_used:,} gas), in the payer's namespace")
        self.say(f"   {opg(charged.amount)} paid {'from escrow' if charged.fromEscrow else 'from the wallet'}: node "
                 f"{opg(split.toNode)}, model owner {opg(split.toModelOwner)}, treasury {opg(split.toTreasury)}, "
                 f"stakers {opg(split.toStakers)}")

    def batch_and_challenge(self):
        """The relayer batches the node's receipts and refuses a forged one; posted anyway, the watchtower proves it"""
        batches, staking = self.suite["BatchSettlement"], self.suite["NodeStaking"]
        settlement = self.suite["InferenceSettlement"]
        # A batch carries only receipts made strictly before it is posted, and the next block may share the
        # latest block's second; the model must be registered before the receipts' second (the chapters before
        # may all have run within one second).
        advance(chain, 2)
        node_key, stamp = self.cast.node.private_key, chain.blocks.head.timestamp - 1
        signed = []
        for i in range(4):
            r = Receipt(requestId=keccak(text=f"demo batch {i}"), modelId=self.chat_model,
                        inputHash=keccak(text=f"question {i}"), outputHash=keccak(text=f"answer {i}"),
                        mode=Mode.VANILLA, signer=self.cast.node.address, timestamp=stamp,
                        payer=self.cast.payer.address)
            signature = sign_receipt(settlement, r, node_key if i != 2 else Account.create().key)
            signed.append(SignedReceipt(r, signature))
        workspace = PROJECT_ROOT / "build" / "demo"
        spool, published = workspace / "spool", workspace / "batches"
        shutil.rmtree(spool, ignore_errors=True)
        (spool / "accepted").mkdir(parents=True)
        (spool / "rejected").mkdir()
        for index, item in enumerate(signed):
            (spool / f"receipt-{index}.json").write_text(json.dumps(document_json(item.receipt, item.signature)))
        first_block = chain.blocks.head.number + 1
        for line in self._operator("relayer", RELAYER_INDEX, "--spool", str(spool), "--flush", "--publish-dir",
                                   str(published)):
            if line["event"] in ("posted", "rejected"):
                self.say(f"   relayer (ape run relayer): {line['message']}")

        # The relayer turns dishonest: it publishes and posts the forged receipt with the others itself.
        batch = ReceiptBatch(signed)
        check_publish_directory(published)
        path, _ = publish(published, BatchDocument(chain.chain_id, str(batches.address), tuple(signed)))
        tx = batches.postBatch(batch.root, len(batch), path.resolve().as_uri(), sender=self.cast.relayer)
        batch_id = tx.events.filter(batches.BatchPosted)[0].batchId
        self.say(f"   the relayer posts all 4 itself anyway: batch {batch_id} for {tx.gas_used:,} gas, pending for "
                 f"{batches.challengeWindow() // 60} minutes, its data published at {path.name[:12]}…")
        bond = staking.selfBond(self.cast.relayer)
        before = self.suite["OPGToken"].balanceOf(self.cast.challenger)
        for line in self._operator("watchtower", CHALLENGER_INDEX, "--confirmations", "0", "--from-block",
                                   str(first_block)):
            if line["event"] in ("batch-challenged", "batch-valid"):
                self.say(f"   watchtower (ape run watchtower): {line['message']}")
        challenges = list(batches.BatchChallenged.range(first_block, chain.blocks.head.number + 1))
        if not challenges:
            raise ApeException("the watchtower did not challenge the forged receipt")
        self.say(f"   challenge proved {Fault(challenges[0].fault).name}: batch {batch_id} is "
                 f"{Status(batches.batchStatus(batch_id)).name}")
        self.say(f"   relayer slashed {opg(bond - staking.selfBond(self.cast.relayer))} and jailed")
        # The slash was recorded; the keeper applies it (stake, votes, payouts) as it does on every `Slashed`.
        for line in self._operator("keeper", CHALLENGER_INDEX, "--confirmations", "0", "--from-block",
                                   str(first_block)):
            if line["event"] == "slash-applied":
                self.say(f"   keeper (ape run keeper): {line['message']}")
        reward = self.suite["OPGToken"].balanceOf(self.cast.challenger) - before
        self.say(f"   challenger rewarded {opg(reward)}")
        refusal = self._refusal(batches, "claimBatchReceipt", batch_id, batch.leaf(0), NO_AUTHORIZATION, b"",
                                sender=self.cast.payer)
        self.say(f"   the payer's claim of an honest receipt in it is refused: {refusal}; that request is "
                 f"{Status(settlement.recordOf(self.cast.payer, signed[0].receipt.requestId).status).name} in the "
                 "payer's namespace, free to settle again")

    def _operator(self, name: str, account_index: int, *options: str) -> list[dict]:
        """Run an operator as its own process against this chain, signing as test account ``account_index``;
        its JSON lines."""
        state = PROJECT_ROOT / "build" / "demo" / f"{name}.db"
        state.unlink(missing_ok=True)  # a new chain each run: last run's state belongs to another one
        result = run_operator(name, chain.provider.uri, str(self.suite["InferenceSettlement"].address), state,
                              f"TEST::{account_index}", "--json", *options)
        if result.returncode not in (0, 1):
            raise ApeException(f"ape run {name} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
        return json_lines(result.stdout)

    def consumer_vault(self):
        """A vault pays out only on a FINAL, TEE-or-better risk score in its owner's namespace"""
        settlement, token, owner = self.suite["InferenceSettlement"], self.suite["OPGToken"], self.cast.deployer
        self.vault = vault = owner.deploy(project.RiskGatedVault, settlement, token, self.risk_model, int(Mode.TEE),
                                          MAX_RISK_SCORE, owner)
        token.transfer(vault, 1_000 * OPG, sender=owner)
        token.approve(settlement, 2**256 - 1, sender=owner)
        app = vault.open(self.cast.beneficiary, 500 * OPG, sender=owner).events[0].applicationId
        r = self._score_receipt(app, score=12)
        status = Status(settlement.recordOf(owner, r.requestId).status).name
        refusal = self._refusal(vault, "release", app, r.as_args(), 12, "{}", sender=self.cast.beneficiary)
        self.say(f"   vault {vault.address}: its owner opens application {app} for {opg(500 * OPG)}; the request "
                 f"lives in the owner's namespace")
        self.say(f"   the TEE signs score 12, but the request is {status} on chain: release refused: {refusal}")
        tx = settlement.settle(r.as_args(), sign_receipt(settlement, r, TEE_KEY.key), sender=owner)
        before = token.balanceOf(self.cast.beneficiary)
        vault.release(app, r.as_args(), 12, "{}", sender=self.cast.beneficiary)
        self.say(f"   the owner settles the signed score itself with settle() and pays {opg(r.price)} "
                 f"({tx.gas_used:,} gas): {Status(settlement.recordOf(owner, r.requestId).status).name}")
        paid = token.balanceOf(self.cast.beneficiary) - before
        self.say(f"   risk score 12 ≤ {MAX_RISK_SCORE}: released {opg(paid)} to {self.cast.beneficiary.address}")

    def consumer_callbacks(self):
        """A consumer contract asks a question on chain and the verified answer is called back to it: no polling"""
        requests, token, payer = self.suite["InferenceRequests"], self.suite["OPGToken"], self.cast.payer
        feed = self.cast.deployer.deploy(project.ModelAnswerFeed, requests, token, self.chat_model, int(Mode.TEE),
                                         0, 200_000)  # 0: Immediate, answered in the settling transaction
        token.approve(feed, 2**256 - 1, sender=payer)
        question = keccak(text="Is the lighthouse lit?")
        fee = requests.quoteFee(self.chat_model) + OPG
        asked = feed.ask(question, fee, 3_600, sender=payer)
        request_id = asked.events.filter(feed.Asked)[0].requestId
        self.say(f"   feed {feed.address} opens request #{int.from_bytes(request_id, 'big')} for the chat model, TEE or "
                 f"better, {opg(fee)} escrowed ({asked.gas_used:,} gas); only the requests contract may answer in its "
                 "namespace")
        output = manifest_from_response({"text": "Yes: the lamp turns every ten seconds."}).canonical_json()
        answer = Receipt(
            requestId=request_id, modelId=self.chat_model, inputHash=question, outputHash=keccak(output),
            mode=Mode.TEE, signer=TEE_KEY.address, timestamp=chain.blocks.head.timestamp, payer=requests.address,
            price=requests.quoteFee(self.chat_model),
        )
        settlement = self.suite["InferenceSettlement"]
        tx = requests.fulfill(request_id, answer.as_args(), sign_receipt(settlement, answer, TEE_KEY.key), output,
                              sender=self.cast.node)
        answered = tx.events.filter(requests.RequestAnswered)[0]
        stored = feed.answers(request_id)
        self.say(f"   the TEE's operator fulfils it: settled {Status(settlement.recordOf(requests, request_id).status).name} "
                 f"and the feed called back in the same transaction ({tx.gas_used:,} gas)")
        self.say(f"   the feed holds the {Mode(stored.mode).name} answer (hash {stored.outputHash.hex()[:16]}…); "
                 f"{opg(answered.price)} paid, {opg(answered.refund)} of the fee returned to the feed")

    def adversary_refused(self):
        """An attacker node tries to answer the vault's next request with the owner's authorization, and fails"""
        settlement, token, owner, attacker = (self.suite["InferenceSettlement"], self.suite["OPGToken"],
                                              self.cast.deployer, self.cast.attacker)
        vault = self.vault
        app = vault.open(self.cast.beneficiary, 200 * OPG, sender=owner).events[0].applicationId
        honest = self._score_receipt(app, score=31)
        authorization = PaymentAuthorization.for_receipt(honest, chain.pending_timestamp + 600, node=self.tee_operator)
        owner_signature = sign_payment(settlement, authorization, owner.private_key)
        self.say(f"   the owner opens application {app} and signs an authorization for the TEE's operator; the "
                 "attacker sees it in the mempool")
        forged = honest.with_changes(outputHash=vault.scoreOutputHash(0, "{}"), mode=Mode.VANILLA,
                                     signer=attacker.address)
        forged_signature = sign_receipt(settlement, forged, attacker.private_key)
        refusal = self._refusal(settlement, "settleWithAuthorization", forged.as_args(), forged_signature,
                                authorization.as_args(), owner_signature, sender=attacker)
        self.say(f"   its own answer (score 0) under the owner's authorization: refused: {refusal}")
        refusal = self._refusal(settlement, "settle", forged.as_args(), forged_signature, sender=attacker)
        self.say(f"   the same answer without the authorization: refused: {refusal}")
        self.say(f"   the owner's request is still {Status(settlement.recordOf(owner, honest.requestId).status).name}")
        settlement.settleWithAuthorization(honest.as_args(), sign_receipt(settlement, honest, TEE_KEY.key),
                                           authorization.as_args(), owner_signature, sender=self.cast.node)
        before = token.balanceOf(self.cast.beneficiary)
        vault.release(app, honest.as_args(), 31, "{}", sender=self.cast.beneficiary)
        self.say(f"   the TEE operator the authorization names settles the enclave's score 31 under it: application "
                 f"{app} released {opg(token.balanceOf(self.cast.beneficiary) - before)}")

    def zkml_liquidation(self):
        """Liquidations need ZKML: EZKL proofs of a risk model, verified on chain, before collateral moves"""
        settlement, token, deployer = self.suite["InferenceSettlement"], self.suite["OPGToken"], self.cast.deployer
        liquidator = self.cast.challenger
        with self.quiet():
            artifacts = pipeline.build(LIQUIDATION_RISK)  # cached in .zkml/ after the first run
            model = deploy_model(artifacts, project, self.suite["ModelRegistry"], self.cast.model_owner)
        threshold = 2**artifacts.output_scale  # a risk score of 1.0
        guard = deployer.deploy(project.LiquidationGuard, settlement, token, model.model_id, 0, threshold, deployer)
        token.approve(guard, 2**256 - 1, sender=deployer)
        built = "reused from .zkml/" if artifacts.reused else f"built in {artifacts.build_seconds:.0f} s"
        self.say(f"   model {LIQUIDATION_RISK.name} 0x{model.model_id.hex()[:16]}…  ZKML only; EZKL keys {built} "
                 f"(proving key {artifacts.proving_key_bytes / 2**20:,.0f} MiB, development SRS: local chains only)")
        self.say(f"   Halo2 verifier {model.halo2_verifier.address} behind adapter {model.adapter.address}")
        positions = {}
        for label, features in (("safe", SAFE_POSITION), ("risky", RISKY_POSITION)):
            tx = guard.openPosition(self.cast.beneficiary, 300 * OPG, artifacts.quantize(features), sender=deployer)
            positions[label] = tx.events.filter(guard.PositionOpened)[0].positionId

        with self.quiet():
            safe = pipeline.prove(artifacts, SAFE_POSITION)
        r = self._zkml_receipt("demo zkml safe", model.model_id, safe, payer=liquidator)
        evidence = zkml_evidence(sign_receipt(settlement, r, self.cast.node.private_key), safe.proof, safe.inputs,
                                 safe.outputs)
        tx = settlement.settle(r.as_args(), evidence, sender=liquidator)
        self.say(f"   safe position: proved risk {safe.output_values[0]:.3f} in {safe.proving_seconds:.1f} s; the "
                 f"liquidator who asked for it settles it FINAL with the proof ({tx.gas_used:,} gas); "
                 f"liquidation refused: {self._liquidation_refusal(guard, positions['safe'], r, safe.outputs)}")

        with self.quiet():
            risky = pipeline.prove(artifacts, RISKY_POSITION)
        r = self._zkml_receipt("demo zkml risky", model.model_id, risky, payer=liquidator)
        authorization = PaymentAuthorization.for_receipt(r, chain.pending_timestamp + 600)
        settlement.postPending(r.as_args(), authorization.as_args(),
                               sign_payment(settlement, authorization, liquidator.private_key), sender=self.cast.node)
        self.say(f"   risky position: the node posts risk {risky.output_values[0]:.3f} as PENDING first, under the "
                 f"liquidator's authorization; liquidation refused: "
                 f"{self._liquidation_refusal(guard, positions['risky'], r, risky.outputs)}")
        tx = settlement.deliverProof(r.as_args(), zkml_proof_evidence(risky.proof, risky.inputs, risky.outputs),
                                     sender=liquidator)
        self.say(f"   its proof is delivered and verified on chain ({tx.gas_used:,} gas): "
                 f"{Status(settlement.recordOf(liquidator, r.requestId).status).name}")
        before = token.balanceOf(liquidator)
        guard.liquidate(positions["risky"], r.as_args(), risky.outputs, sender=liquidator)
        self.say(f"   risk {risky.output_values[0]:.3f} ≥ 1.000: position liquidated, "
                 f"{opg(token.balanceOf(liquidator) - before)} to the liquidator")

    def audit_receipt(self):
        """An auditor checks the TEE receipt and reads what its mode covers"""
        settlement = self.suite["InferenceSettlement"]
        document = ReceiptDocument(self.tee_receipt, self.tee_signature, response=self.response)
        report = verify_document(settlement, self.suite["TEERegistry"], self.suite["NodeStaking"], self.suite["ModelRegistry"], document)
        for check in report.checks:
            mark = {True: "ok", False: "FAIL", None: "--"}[check.ok]
            self.say(f"   {mark:<4} {check.name:<13} {check.detail}")
        covers, not_covered = report.covers()
        self.say(f"   covers:      {covers}")
        self.say(f"   not covered: {not_covered}")

    def twin_market(self):
        """A twin is created, bought and sold on the shares market"""
        market, trader = self.suite["TwinMarket"], self.cast.trader
        twin, deadline, divisor = b"\x0d" * 16, chain.pending_timestamp + 3_600, self.params.twin_curve_divisor
        market.createTwin(twin, "https://twin.example/demo", 1, 0, 10**18, deadline, sender=self.cast.model_owner)
        protocol, subject = market.fees()
        quote = twin_model.buy_quote(1, 10, divisor, protocol, subject)
        market.buy(twin, 10, quote.buy_cost, protocol + subject, deadline, value=quote.buy_cost, sender=trader)
        sale = twin_model.sell_quote(11, 4, divisor, protocol, subject)
        market.sell(twin, 4, sale.sell_payout, protocol + subject, deadline, sender=trader)
        self.say(f"   bought 10 shares for {quote.buy_cost / 10**18:.6f} ETH, sold 4 for {sale.sell_payout / 10**18:.6f} ETH "
                 f"at fees {percent(protocol)} + {percent(subject)}")

    def monitor_fees(self):
        """The fee monitor reports the twin market's fees and catches the scheduled rise"""
        market = self.suite["TwinMarket"]
        snapshot = Snapshot.read(market)
        self.say(f"   fees now {percent(snapshot.protocol_fee)} + {percent(snapshot.subject_fee)}; scheduled protocol "
                 f"{percent(snapshot.pending_protocol_fee)} from timestamp {snapshot.pending_eta}")
        checkpoint = Checkpoint.load(None, market.address, chain.chain_id, self.start_block)
        alerts = report_new_events(market, checkpoint, chain.blocks.head.number, AlertRules(above=ALERT_ABOVE),
                                   lambda event, reasons: self.say("   " + event_line(event, reasons).replace("\n", "\n   ")))
        self.alerts = alerts
        self.say(f"   {len(alerts)} alert(s) above {percent(ALERT_ABOVE)}")

    # ---------------------------------------------------------------- helpers

    def execution_history(self):
        """Every node and model leaves a record: the history indexer rebuilds it from the chain, with a reputation"""
        database = Path("build") / "demo" / "history.sqlite"  # scripts run from the project root
        (PROJECT_ROOT / database).unlink(missing_ok=True)  # a new chain each run
        common = ("--network", chain.provider.uri, "--settlement", str(self.suite["InferenceSettlement"].address),
                  "--requests", str(self.suite["InferenceRequests"].address), "--db", str(database))
        for subject in (("--node", self.cast.node.address), ("--model", "0x" + bytes(self.chat_model).hex())):
            for line in self._script("history", *common, *subject).rstrip().splitlines():
                if not line.startswith("INFO:"):  # ape's connection notice
                    self.say(f"   {line}")

    def _zkml_receipt(self, label, model_id, proof, payer) -> Receipt:
        return Receipt(requestId=keccak(text=label), modelId=model_id, inputHash=proof.input_hash,
                       outputHash=proof.output_hash, mode=Mode.ZKML, signer=self.cast.node.address,
                       # a second back: a pending result needs a receipt from an earlier second than its posting
                       timestamp=chain.blocks.head.timestamp - 1, payer=payer.address)

    def _score_receipt(self, application, score: int) -> Receipt:
        """The TEE's risk score for a vault application, in the vault owner's namespace, at the model's price."""
        vault, models = self.vault, self.suite["ModelRegistry"]
        return Receipt(requestId=vault.requestIdOf(application), modelId=self.risk_model,
                       inputHash=vault.inputHashOf(application), outputHash=vault.scoreOutputHash(score, "{}"),
                       mode=Mode.TEE, signer=TEE_KEY.address, timestamp=chain.blocks.head.timestamp,
                       payer=self.cast.deployer.address, price=models.model(self.risk_model).price)

    def _liquidation_refusal(self, guard, position, receipt, scores) -> str:
        return self._refusal(guard, "liquidate", position, receipt.as_args(), scores, sender=self.cast.challenger)

    def _refusal(self, contract, method, *args, sender) -> str:
        """The name of the custom error ``contract.method(*args)`` reverts with for ``sender`` (asked with
        eth_call, so nothing is sent and ape prints no trace)."""
        call = {"to": contract.address, "from": sender.address, "data": getattr(contract, method).encode_input(*args)}
        try:
            chain.provider.web3.eth.call(call)
        except ContractCustomError as error:
            selector = bytes.fromhex(str(error.data).removeprefix("0x"))[:4]
            sources = (contract, self.suite["InferenceSettlement"], self.suite["BatchSettlement"])
            errors = [abi for source in sources for abi in source.contract_type.errors]
            return next(abi.name for abi in errors if keccak(text=abi.selector)[:4] == selector)
        raise AssertionError(f"{contract.contract_type.name}.{method} accepted what it must refuse")

    def _register_model(self, label, allowed, minimum):
        spec = (hashlib.sha256(f"demo model {label}".encode()).digest(), f"ipfs://demo/{label}", 2 * OPG, allowed,
                int(minimum), b"\x00" * 32, False, 0, ZERO_ADDRESS, b"\x00" * 32)
        tx = self.suite["ModelRegistry"].register(spec, sender=self.cast.model_owner)
        return tx.events.filter(self.suite["ModelRegistry"].ModelRegistered)[0].modelId
