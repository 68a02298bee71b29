"""TwinMarket fixtures, module-scoped so each test module starts from a fresh market."""

import pytest

from twin_constants import (
    FEE_DELAY, MIN_SHARES_TO_CREATE, PROTOCOL_FEE, PROTOCOL_FEE_CAP, SUBJECT_FEE, SUBJECT_FEE_CAP, TRANSFER_DELAY,
    TWIN_FUN_DIVISOR,
)


@pytest.fixture(scope="session")
def deploy_market(project, deployer):
    def deploy(owner, fee_destination, claim_manager, **overrides):
        params = dict(
            divisor=TWIN_FUN_DIVISOR, min_shares=MIN_SHARES_TO_CREATE, protocol_cap=PROTOCOL_FEE_CAP,
            subject_cap=SUBJECT_FEE_CAP, protocol_fee=PROTOCOL_FEE, subject_fee=SUBJECT_FEE,
            fee_delay=FEE_DELAY, transfer_delay=TRANSFER_DELAY,
        ) | overrides
        return deployer.deploy(
            project.TwinMarket, owner, fee_destination, claim_manager, params["divisor"], params["min_shares"],
            params["protocol_cap"], params["subject_cap"], params["protocol_fee"], params["subject_fee"],
            params["fee_delay"], params["transfer_delay"],
        )

    return deploy


@pytest.fixture(scope="module")
def market(deploy_market, gov, treasury, reporter):
    """Owner `gov`, fee destination `treasury`, claim manager `reporter`; 5% + 5% fees, caps 10% each."""
    return deploy_market(gov, treasury, reporter)
