"""One model of a deployment: the compared, sent and read fields all come from it.

The fields of a deployment used to live in seven hand-kept places, which is how a marker
came to be read that nothing wrote. Each place is derived from `DeploymentFields` now;
these tests derive them again and hold each against Prefect's own client and schemas.
"""

from __future__ import annotations

import inspect

from control_plane.deployments import (
    COMPARED_FIELDS,
    DERIVED_COMPARED,
    NOT_COMPARED,
    DeploymentFields,
    DeploymentSpec,
    LiveDeployment,
)
from control_plane.prefect_objects import NOT_SENT, create_arguments
from tests.unit.test_plans import spec


def test_the_compared_fields_are_the_model_fields_but_identity_version_and_paused() -> None:
    model = list(DeploymentFields.model_fields)
    assert [f for f in COMPARED_FIELDS if f not in DERIVED_COMPARED] == [
        f for f in model if f not in NOT_COMPARED
    ]
    assert {"name", "flow_name", "version", "paused"} == NOT_COMPARED
    # the code digest is the one derived field: a marker tag, shown after the entrypoint
    assert COMPARED_FIELDS[COMPARED_FIELDS.index("entrypoint") + 1] == "code_fingerprint"


def test_both_sides_of_a_plan_are_the_model() -> None:
    for side in (DeploymentSpec, LiveDeployment):
        assert issubclass(side, DeploymentFields)
        assert set(DeploymentFields.model_fields) <= set(side.model_fields)
    # what the server stores and is not in the model would go unread: nothing but the id
    assert set(LiveDeployment.model_fields) - set(DeploymentFields.model_fields) == {"id"}


def test_registration_sends_every_field_of_the_model_as_prefect_takes_it() -> None:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.actions import DeploymentUpdate

    schedule = {"schedule": {"cron": "0 3 * * *", "timezone": "UTC"}, "slug": "dm-1"}
    arguments = create_arguments(spec("a", schedules=(schedule,)))
    assert set(arguments) == set(DeploymentFields.model_fields) - NOT_SENT
    accepted = set(inspect.signature(PrefectClient.create_deployment).parameters)
    assert set(arguments) <= accepted
    updatable = set(DeploymentUpdate.model_fields)
    assert set(arguments) - {"name"} <= updatable
