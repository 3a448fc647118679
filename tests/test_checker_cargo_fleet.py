"""The checker on issue 15's rules (shipment types, ignored shipments and vehicles,
max_active_vehicles) and costs (visit costs, costs_per_vehicle, global duration): the main
solution passes where it satisfies them, and each violation is caught."""

from __future__ import annotations

import pytest

from tests.checker import check_solution
from tests.checker_cases import (
    CARGO_FLEET_MUTATIONS,
    VALID_CARGO_FLEET,
    Mutation,
    assert_caught,
    main_model,
    main_solution,
)


@pytest.mark.parametrize("mutation", VALID_CARGO_FLEET)
def test_rules_the_main_solution_satisfies_pass(mutation: Mutation) -> None:
    check_solution(*mutation(main_model(), main_solution()))


@pytest.mark.parametrize(("mutation", "expected"), CARGO_FLEET_MUTATIONS)
def test_violation_is_caught(mutation: Mutation, expected: str) -> None:
    assert_caught(mutation, expected)
