"""The protocol model under Hypothesis, within a time budget (MODEL_BUDGET_S, 60 s by default):
batches of generated schedules until the budget is spent; any counterexample is shrunk and fails
the test with its steps. `make model` runs ≥ 20,000 schedules (tests/model/run.py)."""

import os
import time

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from .machine import ModelCounter, ProtocolModel

BUDGET_S = float(os.environ.get("MODEL_BUDGET_S", "60"))
STEPS = 50


def model_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def run_batches(budget_s: float, at_least: int = 0, batch: int = 200, progress=None) -> tuple[int, float]:
    """Batches of schedules until `budget_s` has passed and at least `at_least` ran; the number of
    schedules run (shrinking included) and the time taken. `progress(schedules, seconds)` is called
    after each batch."""
    started, before = time.monotonic(), ModelCounter.schedules
    while time.monotonic() - started < budget_s or ModelCounter.schedules - before < at_least:
        run_state_machine_as_test(ProtocolModel, settings=model_settings(batch))
        if progress is not None:
            progress(ModelCounter.schedules - before, time.monotonic() - started)
    return ModelCounter.schedules - before, time.monotonic() - started


# Room for Hypothesis to shrink a counterexample (it gives up after five minutes) past the budget.
@pytest.mark.timeout(BUDGET_S + 600)
def test_no_schedule_breaks_the_protocol(capsys):
    schedules, took = run_batches(BUDGET_S, batch=50)
    with capsys.disabled():
        print(f"\nmodel: {schedules} schedules in {took:.0f} s (MODEL_BUDGET_S={BUDGET_S:g})")
    assert schedules > 0
