"""Registry fixtures, module-scoped so each test module starts from fresh deployments."""

import pytest

from registry_helpers import spec


@pytest.fixture(scope="module")
def models(project, deployer):
    return deployer.deploy(project.ModelRegistry)


@pytest.fixture(scope="module")
def register_model(models):
    """Factory: register a model from ``spec(label, **overrides)``; returns its id."""

    def register(owner, label="base", **overrides):
        tx = models.register(spec(label, **overrides), sender=owner)
        return tx.events.filter(models.ModelRegistered)[0].modelId

    return register
