"""`make lint` gating: a real slither run over a small project with a known high-impact bug."""

import shutil

import pytest
import yaml

from opgkit import PROJECT_ROOT
from opgkit.toolchain.slither import Finding, judge, lint, project_sources

REENTRANT_VAULT = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

contract Vault {
    mapping(address => uint256) public balances;

    function deposit() external payable {
        balances[msg.sender] += msg.value;
    }

    function withdraw() external {
        uint256 amount = balances[msg.sender];
        (bool ok, ) = msg.sender.call{value: amount}("");
        require(ok, "send failed");
        balances[msg.sender] = 0;
    }
}
"""


@pytest.fixture
def vulnerable_project(tmp_path):
    shutil.copy(PROJECT_ROOT / "ape-config.yaml", tmp_path / "ape-config.yaml")
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "Vault.sol").write_text(REENTRANT_VAULT)
    return tmp_path


def triage(root, *entries):
    (root / "slither-triage.yaml").write_text(yaml.safe_dump({"triaged": list(entries)}))


def test_project_sources__listed__are_contracts_and_interfaces_only():
    sources = [str(path) for path in project_sources()]
    assert "contracts/OPGToken.sol" in sources and "interfaces/IOPGToken.sol" in sources
    assert not [path for path in sources if ".cache" in path]


def test_lint__untriaged_high_finding__fails_and_says_where(vulnerable_project, capsys):
    assert lint(vulnerable_project) == 1
    out = capsys.readouterr().out
    assert "[High] reentrancy-eth at Vault.withdraw() - UNTRIAGED" in out
    assert "slither-triage.yaml" in out


def test_lint__finding_triaged_with_reason__passes(vulnerable_project, capsys):
    triage(vulnerable_project, {"check": "reentrancy-eth", "location": "Vault.withdraw()", "reason": "test fixture"})
    assert lint(vulnerable_project) == 0
    assert "triaged: test fixture" in capsys.readouterr().out


def test_lint__triage_without_reason__is_refused(vulnerable_project, capsys):
    triage(vulnerable_project, {"check": "reentrancy-eth", "location": "Vault.withdraw()", "reason": ""})
    assert lint(vulnerable_project) == 1
    assert "needs a one-line reason" in capsys.readouterr().err


def test_judge__triage_entry_no_longer_reported__is_listed_as_stale():
    low = Finding("naming-convention", "Informational", "A.f()", "")
    verdict = judge([low], {("reentrancy-eth", "Vault.withdraw()"): "old"})
    assert verdict.stale == [("reentrancy-eth", "Vault.withdraw()")]
    assert verdict.untriaged == [] and verdict.others == 1
