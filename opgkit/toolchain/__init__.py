"""Offline Solidity toolchain: a py-solc-x compatible solc, and slither inputs built from it."""
