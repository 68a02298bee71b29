"""Plain JSON-RPC to the test chain, as the settlement machine speaks it: batched calls, transactions from any
sender, raw receipts. One class talks to a node (anvil); the other answers from the in-process chain."""

from __future__ import annotations

import time

from opgkit.inprocess.evm import InProcessChain, Reverted

GAS = 6_000_000


class NodeRpc:
    """Requests to a node's HTTP endpoint, without ape's client-side processing."""

    def __init__(self, provider):
        self.provider = provider  # web3's HTTP provider of the chain

    def request(self, method, *params):
        reply = self.provider.make_request(method, list(params))
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def calls(self, items, sender=None):
        """`eth_call` each (address, calldata) on the latest block; a revert comes back as `Reverted`."""
        if not items:
            return []
        replies = self.provider.make_batch_request(
            [("eth_call", [_tx(to, data, sender), "latest"]) for to, data in items])
        assert isinstance(replies, list), f"batched calls failed: {replies}"
        return [_result(reply) for reply in replies]

    def send(self, sender, to, data):
        """Send from an unlocked or impersonated account; returns the raw receipt (a reverted one too)."""
        txhash = self.request("eth_sendTransaction", _tx(to, data, sender) | {"gas": hex(GAS)})
        for attempt in range(200):  # mined at once, though its receipt may show up a moment later
            mined = self.request("eth_getTransactionReceipt", txhash)
            if mined is not None:
                return mined
            time.sleep(0.002 * attempt)
        raise AssertionError(f"transaction {txhash} was not mined")

    def timestamp(self):
        return int(self.request("eth_getBlockByNumber", "latest", False)["timestamp"], 16)


class InProcessRpc:
    """The same requests answered by the in-process chain (every sender may send, as if impersonated)."""

    def __init__(self, chain: InProcessChain):
        self.chain = chain

    def request(self, method, *params):
        if method == "anvil_impersonateAccount":
            return None
        if method == "anvil_setBalance":
            self.chain.set_balance(params[0], int(params[1], 16))
            return None
        raise NotImplementedError(f"{method} is not offered by the in-process chain")

    def calls(self, items, sender=None):
        results = []
        for to, data in items:
            try:
                results.append(self.chain.call(sender, to, bytes(data)))
            except Reverted as reverted:
                results.append(reverted)
        return results

    def send(self, sender, to, data):
        try:
            raw = self.chain.transact(sender, to, bytes(data))
        except Reverted:  # mined all the same, as on a node
            return {"status": "0x0", "logs": []}
        logs = [{"address": address, "topics": ["0x" + t.hex() for t in topics], "data": "0x" + payload.hex()}
                for address, topics, payload in raw.logs]
        return {"status": "0x1", "logs": logs}

    def timestamp(self):
        return self.chain.head.timestamp


def json_rpc(chain):
    """The raw-RPC view of ``chain``: in-process, or ape's node."""
    if isinstance(chain, InProcessChain):
        return InProcessRpc(chain)
    return NodeRpc(chain.provider.web3.provider)


def _tx(to, data, sender):
    tx = {"to": to, "data": "0x" + bytes(data).hex()}
    if sender:
        tx["from"] = sender
    return tx


def _result(reply):
    if "error" in reply:
        data = reply["error"].get("data")
        if isinstance(data, dict):
            data = data.get("data")
        return Reverted(bytes.fromhex((data or "0x")[2:]))
    return bytes.fromhex(reply["result"][2:])
