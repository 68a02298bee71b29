"""Fixtures for the tests that run the scripts as their own processes."""

import pytest


@pytest.fixture(scope="module")
def uri(networks):
    """The test's anvil, for scripts started as processes (`--network <uri>`)."""
    if networks.provider.name != "foundry":
        pytest.skip("the scripts run as their own processes against the test's anvil")
    return networks.provider.uri
