"""The mutation runner's own tests (`make mutation`, opgkit/mutation.py): which mutants it keeps, how it compiles
and judges them, and the report it writes. No chain is needed: the one run of tests happens in a subprocess."""

import json
import subprocess
import sys
import textwrap

import pytest

from opgkit import mutation
from opgkit.mutation import EQUIVALENT, KILLED, NOT_COMPILED, SURVIVED, TIMEOUT, Mutant, Tally

pytestmark = pytest.mark.toolchain

SOURCE = textwrap.dedent(
    """\
    // SPDX-License-Identifier: MIT
    pragma solidity ^0.8.24;

    import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

    /// @notice A counter.
    /* a block comment
       that spans lines */
    contract Counter {
        event Counted(uint256 count);
        uint256 public count; // how many
        function up() external { count += 1; } /* done */
        string public constant NOTE = "a // not a comment";
    }
    """
)


def _line(text: str) -> int:
    return next(i for i, line in enumerate(SOURCE.split("\n"), 1) if text in line)


@pytest.mark.parametrize(
    "where, mutated",
    [
        ("SPDX", "// SPDX-License-Identifier: GPL"),
        ("pragma", "pragma solidity ^0.8.25;"),
        ("import", 'import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC21.sol";'),
        ("@notice", "/// @notice A countex."),
        ("that spans", "   that spans lines -1*/"),
        ("event Counted", "    event Counted(uint128 count);"),
        ("uint256 public count", "    uint256 public count; // how few"),
        ("function up", "    function up() external { count += 1; } /* undone */"),
    ],
    ids=["spdx", "pragma", "import", "natspec", "block-comment", "event", "line-comment-tail", "block-comment-tail"],
)
def test_worth_testing__comment_or_declaration_only__filtered(where, mutated):
    assert not mutation.worth_testing(SOURCE, _line(where), mutated)


@pytest.mark.parametrize(
    "where, mutated",
    [
        ("function up", "    function up() external { count -= 1; } /* done */"),
        ("uint256 public count", "    uint128 public count; // how many"),
        ("NOTE", '    string public constant NOTE = "a /* not a comment";'),
    ],
    ids=["operator", "type", "inside-a-string"],
)
def test_worth_testing__code_changed__kept(where, mutated):
    assert mutation.worth_testing(SOURCE, _line(where), mutated)


def test_code_lines__comments_blanked_strings_kept():
    code = mutation.code_lines(SOURCE)
    assert code[_line("uint256 public count") - 1].strip() == "uint256 public count;"
    assert code[_line("that spans") - 1] == ""
    assert code[_line("NOTE") - 1].strip() == 'string public constant NOTE = "a // not a comment";'


def test_sample__same_seed__same_mutants_in_source_order():
    mutants = [Mutant("C", "contracts/C.sol", line, "x", f"y{line}") for line in range(1, 200)]
    first, second = mutation.sample(mutants, 10), mutation.sample(list(reversed(mutants)), 10)
    assert [m.line for m in first] == sorted(m.line for m in first)
    assert {m.line for m in first} == {m.line for m in second}
    assert mutation.sample(list(reversed(mutants)), None) == mutants


def test_generate__settlement_payments__only_distinct_code_mutants():
    raw, mutants = mutation.generate("SettlementPayments")
    assert 0 < len(mutants) < raw
    assert len({(m.line, m.mutated.strip()) for m in mutants}) == len(mutants)
    text = (mutation.ROOT / "contracts" / "SettlementPayments.sol").read_text()
    code = mutation.code_lines(text)
    assert all(code[m.line - 1].strip() for m in mutants), "a mutant of a comment-only line was kept"


def test_dependents__base_contract__brings_its_heirs():
    assert mutation.dependents("contracts/SettlementPayments.sol") == [
        "contracts/InferenceSettlement.sol", "contracts/SettlementPayments.sol"]
    assert mutation.dependents("contracts/TwinMarket.sol") == ["contracts/TwinMarket.sol"]


def _tally(statuses: list[str], triage=None) -> Tally:
    mutants = [Mutant("Token", "contracts/Token.sol", 10 + i, "a + b;", f"a - b{i};", status=s)
               for i, s in enumerate(statuses)]
    return Tally("Token", 50, mutants, triage or {})


def test_tally__score__killed_over_compiled_minus_equivalent_timeouts_killed():
    tally = _tally([KILLED] * 6 + [TIMEOUT] + [SURVIVED] * 2 + [EQUIVALENT] * 3 + [NOT_COMPILED] * 4)
    assert (tally.compiled, tally.equivalent, tally.killed) == (12, 3, 7)
    assert tally.score == pytest.approx(7 / 9)


def test_tally__survivor_argued_equivalent__counts_as_equivalent():
    tally = _tally([KILLED, SURVIVED, SURVIVED], triage={("Token", "a + b;", "a - b1;"): "unreachable"})
    assert [m.line for m in tally.argued] == [11]
    assert [m.line for m in tally.survivors] == [12]
    assert tally.score == pytest.approx(1 / 2)


def test_render__report__table_row_and_every_survivor_as_file_line_and_diff():
    triage = {("Token", "a + b;", "a - b1;"): "the sum is never read"}
    tally = _tally([KILLED, SURVIVED, SURVIVED, EQUIVALENT, NOT_COMPILED], triage)
    report = mutation.render([tally], sampled=5, seconds=90, jobs=2)
    assert "| Token | 50 | 5 | 5 | 1 | 1 + 1 | 1 (0) | 1 | 50.0% ✗ |" in report
    assert "- `contracts/Token.sol:12`\n  ```diff\n  - a + b;\n  + a - b2;\n  ```" in report
    assert "`contracts/Token.sol:11` `a + b;` → `a - b1;`: the sum is never read" in report
    assert "`MUTANTS=5`" in report


def test_compile__comment_changed__same_bytecode_code_changed__other_bytecode():
    compiler = mutation.Compiler()
    try:
        path = "contracts/OPGToken.sol"
        text = (mutation.ROOT / path).read_text()
        original = compiler.compile(mutation.sources_with(path, text))
        commented = compiler.compile(mutation.sources_with(path, text.replace("/// @title", "/// @title (edited)")))
        changed = compiler.compile(mutation.sources_with(path, text.replace("_mint(treasury, TOTAL_SUPPLY)",
                                                                            "_mint(treasury, TOTAL_SUPPLY - 1)")))
        broken = compiler.compile(mutation.sources_with(path, text.replace("_mint(treasury,", "_mint(treasury")))
    finally:
        compiler.close()
    assert set(original) == {"OPGToken"}
    assert commented == original
    assert changed["OPGToken"] != original["OPGToken"]
    assert broken is None


RUN_ONE = """
import json, sys
from opgkit import mutation
path = "contracts/OPGToken.sol"
text = (mutation.ROOT / path).read_text()
compiler = mutation.Compiler()
outcome = {}
for name, source in {"mutant": text.replace("TOTAL_SUPPLY - 0", "x").replace(
        "_mint(treasury, TOTAL_SUPPLY)", "_mint(treasury, TOTAL_SUPPLY - 1)"), "original": text}.items():
    compiled = compiler.compile(mutation.sources_with(path, source))
    outcome[name] = mutation.run_tests(["tests/token/test_token.py"], compiled, 300)
compiler.close()
print(json.dumps(outcome))
"""


def test_run_tests__token_mutant_minting_one_wei_less__killed_original_survives():
    completed = subprocess.run([sys.executable, "-c", RUN_ONE], cwd=mutation.ROOT, capture_output=True, text=True,
                               timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {"mutant": KILLED, "original": SURVIVED}
