"""`make audit` (opgkit.audit): the in-process campaign, its figures, and counterexamples replayed on anvil."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "tests/tools/test_planted_machine.py"


def _audit(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "opgkit.audit", "--no-write-benchmark", *args], cwd=ROOT,
                          env=dict(os.environ, **(env or {})), capture_output=True, text=True, timeout=timeout)


def test_audit__healthy_machine__prints_steps_per_second_beside_anvil_and_exits_0():
    result = _audit("--examples", "3", "--workers", "2", "tests/twin/test_twin_market_properties.py")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    row = re.search(r"^\| test_market_state_machine \| ([\d,]+) \| [\d.,]+ \| ([\d,]+) \| ([\d.,]+) \| ×[\d,]+ \| passed \|$",
                    result.stdout, re.M)
    assert row, result.stdout[-3000:]
    steps, rate, anvil_rate = (float(group.replace(",", "")) for group in row.groups())
    assert steps > 0 and rate > 0 and anvil_rate > 0
    assert re.search(r"^\| \*\*total\*\* \(2 workers, wall clock\) \| [\d,]+ \| [\d.,]+ \| [\d,]+ \|", result.stdout, re.M)
    assert "COUNTEREXAMPLE" not in result.stdout


def test_audit__planted_failure__found_in_process_and_replayed_on_anvil():
    replays = sorted((ROOT / "tests/tools").glob("test_replay_planted_state_machine_*.py"))
    assert not replays, "a replay from an earlier run was left behind"
    try:
        result = _audit("--examples", "60", "--workers", "1", "--no-anvil", PLANTED, env={"OPG_PLANTED_FAILURE": "1"})
        assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
        assert (f"COUNTEREXAMPLE in {PLANTED}::test_planted_state_machine: AssertionError: the treasury paid out"
                in result.stdout)
        replay = re.search(r"replay: (tests/tools/test_replay_planted_state_machine_\w+\.py) — reproduces on anvil",
                           result.stdout)
        assert replay, result.stdout[-3000:]
        assert (f"run it: OPG_HYPOTHESIS_PROFILE=audit ape test {replay.group(1)} --network ethereum:local:foundry"
                in result.stdout)
        source = (ROOT / replay.group(1)).read_text()
        assert "reproduce_failure('6." in source and "machine_test.test_planted_state_machine(" in source
    finally:
        for path in (ROOT / "tests/tools").glob("test_replay_planted_state_machine_*.py"):
            path.unlink()


def test_audit__machine_that_never_ran__is_an_error_not_a_pass():
    result = _audit("--examples", "2", "--workers", "1", "--no-anvil", PLANTED, env={"OPG_PLANTED_FAILURE": "setup"})
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^\| test_planted_state_machine \| 0 \| .* \| error \|$", result.stdout, re.M), result.stdout
    assert f"ERROR in {PLANTED}::test_planted_state_machine" in result.stderr


def test_audit__no_machine_under_the_paths__exits_2_with_a_reason():
    result = _audit("--examples", "1", "--workers", "1", "--no-anvil", "tests/tools/test_inprocess_chain.py")
    assert result.returncode == 2
    assert "No state machine ran" in result.stderr and "Traceback" not in result.stderr


def test_audit__missing_path__usage_error():
    result = _audit("tests/no_such_folder")
    assert result.returncode == 2
    assert "tests/no_such_folder does not exist" in result.stderr and "Traceback" not in result.stderr


def _report(site, *errors):
    """The tail of a pytest failure report: its E lines, then where it was raised."""
    return "\n".join([*(f"E   {error}" for error in errors), "", f"{site}: Error"])


def test_same_failure__a_revert_worded_by_each_chain__matches_by_custom_error_name():
    from opgkit.audit import _same_failure

    site = "tests/staking/test_staking_properties.py:189"
    in_process = _report(site, "opgkit.inprocess.contracts.ContractRevert: NodeStakingZeroAmount()")
    assert _same_failure(in_process, _report(site, "types.NodeStakingZeroAmount: Transaction failed."))
    assert not _same_failure(in_process, _report(site, "types.NodeStakingOperatorJailed: Transaction failed."))
    assert not _same_failure(in_process, _report("tests/staking/test_staking_properties.py:200",
                                                 "types.NodeStakingZeroAmount: Transaction failed."))


def test_same_failure__an_assertion_with_chain_specific_values__matches_by_where_it_failed():
    from opgkit.audit import _same_failure

    site = "tests/staking/test_staking_properties.py:125"
    assert _same_failure(_report(site, "AssertionError: assert 1767226000 >= 1767226100"),
                         _report(site, "AssertionError: assert 1796056173 >= 1796056273"))
    assert not _same_failure(_report(site, "AssertionError: x"),
                             _report("tests/staking/test_staking_properties.py:126", "AssertionError: x"))
    assert not _same_failure(_report(site, "AssertionError: x"), _report(site, "ValueError: y"))
