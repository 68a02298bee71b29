"""Deployment parameters from YAML: units, defaults, and every invalid value named before any transaction."""

import dataclasses

import pytest

from opgkit import PROJECT_ROOT
from opgkit.deploy import DAY, OPG, ProtocolParameters
from opgkit.deploy_config import ConfigError, config_path_for, load_parameters, parameters_from_mapping


def test_local_yaml__checked_in__equals_the_built_in_defaults():
    assert load_parameters(config_path_for("local", PROJECT_ROOT)) == ProtocolParameters()


def test_sepolia_yaml__without_attestors__refused_for_a_public_network():
    with pytest.raises(ConfigError, match="attestors: a public network needs at least one attestation service"):
        load_parameters(config_path_for("sepolia", PROJECT_ROOT), local=False)
    assert load_parameters(config_path_for("sepolia", PROJECT_ROOT), local=True).attestors == ()


def test_units__durations_amounts_and_percentages__converted():
    params = parameters_from_mapping({
        "unbonding_delay": "14d", "challenge_window": "90m", "proof_window": 120, "minimum_stakes": [1, 2.5, 3],
        "proposal_threshold": "500", "twin_protocol_fee": 2.5, "attestors": ["0x" + "ab" * 20],
    })
    assert (params.unbonding_delay, params.challenge_window, params.proof_window) == (14 * DAY, 5_400, 120)
    assert params.minimum_stakes == (OPG, 5 * OPG // 2, 3 * OPG)
    assert params.proposal_threshold == 500 * OPG
    assert params.twin_protocol_fee == 25 * 10**15
    assert [a.lower() for a in params.attestors] == ["0x" + "ab" * 20]


def test_empty_file__defaults():
    assert parameters_from_mapping(None) == ProtocolParameters()


@pytest.mark.parametrize("data, message", [
    ({"unbonding_delay": "a week"}, "unbonding_delay: 'a week' is not a duration"),
    ({"minimum_stakes": [1, 2]}, "minimum_stakes: [1, 2] is not a list of three OPG amounts"),
    ({"quorum_percent": 4.5}, "quorum_percent: 4.5 is not a whole number"),
    ({"attestors": ["0x12"]}, "attestors: ['0x12'] is not a list of 0x addresses"),
    ({"twin_curve_divisor": 7}, "twin_curve_divisor: must divide 10^18"),
    ({"unbonding_delay": "29d"}, "unbonding_delay: must be between 1d and 28d"),
    ({"challenge_window": "7d"}, "challenge_window: must be at least 5m and shorter than unbonding_delay"),
    ({"proof_window": "7d"}, "proof_window: must be at least 1h (the missed-proof report margin) shorter than "
                             "unbonding_delay"),
    ({"unbonding_delay": "1d", "proof_window": "24h"}, "proof_window: must be at least 1h"),
    ({"twin_protocol_fee_cap": 30, "twin_subject_fee_cap": 30}, "twin fee caps: must add up to at most 50"),
    ({"attestor_threshold": 2}, "attestor_threshold: must be between 1 and the 1 attestor(s)"),
    ({"max_heartbeat_age": "2d"}, "max_heartbeat_age: must be between 1m and 1d"),
    ({"speed": 1}, "speed: unknown parameter"),
])
def test_invalid_value__config_error_names_it(data, message):
    with pytest.raises(ConfigError) as error:
        parameters_from_mapping(data)
    assert message in str(error.value)


def test_proof_window__report_margin__boundary():
    """InferenceSettlement refuses proof_window + PROOF_REPORT_MARGIN (1h) above the unbonding delay."""
    assert parameters_from_mapping({"unbonding_delay": "2d", "proof_window": "47h"}).proof_window == 47 * 3_600
    with pytest.raises(ConfigError, match="proof_window: must be at least 1h"):
        parameters_from_mapping({"unbonding_delay": "2d", "proof_window": 47 * 3_600 + 1})


def test_settlement_windows_too_long__both_listed_with_the_rest():
    with pytest.raises(ConfigError) as error:
        parameters_from_mapping({"unbonding_delay": "2d", "challenge_window": "2d", "proof_window": "2d",
                                 "twin_protocol_fee": 12})
    lines = str(error.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["twin_protocol_fee", "challenge_window", "proof_window"]


def test_several_problems__all_listed_at_once():
    with pytest.raises(ConfigError) as error:
        parameters_from_mapping({"proof_window": "8d", "max_receipt_age": "31d", "quorum_percent": 0})
    lines = str(error.value).splitlines()
    assert len(lines) == 4  # proof_window breaks two rules: at most 7d, and 1h inside unbonding_delay


def test_not_a_mapping__refused(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_parameters(path)
    path.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_parameters(path)
    with pytest.raises(ConfigError, match="no parameters file"):
        load_parameters(tmp_path / "missing.yaml")


def test_every_parameter__has_a_unit_rule():
    names = {f.name for f in dataclasses.fields(ProtocolParameters)}
    defaults = ProtocolParameters()
    text = config_path_for("local", PROJECT_ROOT).read_text()
    assert all(f"{name}:" in text for name in names), "local.yaml documents every parameter"
    assert defaults.challenge_window < defaults.unbonding_delay
    assert defaults.proof_window + 3_600 <= defaults.unbonding_delay


def test_example_vault_model__hex_id_or_null():
    model = "0x" + "ab" * 32
    assert parameters_from_mapping({"example_vault_model": model}).example_vault_model == bytes.fromhex("ab" * 32)
    assert parameters_from_mapping({"example_vault_model": None}).example_vault_model is None
    with pytest.raises(ConfigError, match="example_vault_model: '0x12' is not a model id"):
        parameters_from_mapping({"example_vault_model": "0x12"})


def test_base_sepolia_parameters__valid_on_its_l2_but_for_the_attestors_it_must_name():
    with pytest.raises(ConfigError) as caught:
        load_parameters(config_path_for("sepolia", PROJECT_ROOT, "base"), local=False, chain_id=84532)
    assert str(caught.value).splitlines() == [
        "attestors: a public network needs at least one attestation service (the deployer alone would vouch for "
        "every TEE)"]
    assert config_path_for("sepolia", PROJECT_ROOT, "base").name == "base-sepolia.yaml"


@pytest.mark.parametrize("chain_id", [8453, 84532, 10, 11155420])
def test_windows_shorter_than_an_op_stack_sequencing_window__refused_on_that_l2_only(chain_id):
    short = {"challenge_window": "1h", "proof_window": "12h"}
    with pytest.raises(ConfigError) as caught:
        parameters_from_mapping(short, chain_id=chain_id)
    problems = str(caught.value).splitlines()
    assert [problem.split(":")[0] for problem in problems] == ["challenge_window", "proof_window"]
    assert "at least 13h" in problems[0] and "sent through L1" in problems[0]
    assert parameters_from_mapping(short, chain_id=11155111).challenge_window == 3_600
    assert parameters_from_mapping({"challenge_window": "13h", "proof_window": "13h"}, chain_id=chain_id)
