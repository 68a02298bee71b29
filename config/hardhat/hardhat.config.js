// A Hardhat node (EDR) as the toolkit's second JSON-RPC client: the same chain id, hardfork and test mnemonic
// as the local anvil, so `--network ethereum:hardhat:node` runs every script unchanged (see the README).
module.exports = {
  networks: {
    hardhat: {
      hardfork: "prague",
      chainId: 31337,
      accounts: { mnemonic: "test test test test test test test test test test test junk", count: 10 },
    },
  },
};
