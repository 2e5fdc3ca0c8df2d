"""Differential tests: the same workflows on the reference server and on the server under test
must produce the same sequence of history event types (and the same outcome).

With SUNDIAL_TARGET=sundial this compares reference vs Sundial; with SUNDIAL_TARGET=reference it
compares two separate reference processes (which must trivially agree). These tests never skip:
a missing binary makes the fixtures, and so the tests, fail.
"""

from __future__ import annotations

import asyncio
import difflib
import json
from typing import Awaitable, Callable, Dict, List, Tuple

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError

from helpers import event_type_name, new_worker, unique, wait_until_waiting, within
from sundial_workflows import (
    ContinueAsNewWorkflow,
    CounterInput,
    HeartbeatTimeoutWorkflow,
    HelloActivityWorkflow,
    RetryWorkflow,
    SignalWorkflow,
    TimerWorkflow,
    WaitForeverWorkflow,
)

pytestmark = pytest.mark.differential

# A scenario drives one workflow to completion on one server and returns
# (outcome, workflow id, first run id).
Scenario = Callable[[Client, str], Awaitable[Tuple[str, str, str]]]
SCENARIOS: Dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


async def outcome_of(handle) -> str:
    try:
        return f"result {await within(handle.result())!r}"
    except WorkflowFailureError as err:
        return f"failure {type(err.cause).__name__}"


@scenario
async def hello_activity_timer(client: Client, tq: str):
    h = await within(client.start_workflow(
        HelloActivityWorkflow.run, "diff", id=unique("hello"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def activity_retries(client: Client, tq: str):
    h = await within(client.start_workflow(RetryWorkflow.run, 3, id=unique("retry"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def heartbeat_timeout(client: Client, tq: str):
    h = await within(client.start_workflow(
        HeartbeatTimeoutWorkflow.run, id=unique("heartbeat"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def timer(client: Client, tq: str):
    h = await within(client.start_workflow(TimerWorkflow.run, 1.0, id=unique("timer"), task_queue=tq))
    elapsed = await within(h.result())  # workflow-clock seconds: compare only the bound
    return f"elapsed >= 1s: {elapsed >= 1.0}", h.id, h.first_execution_run_id


@scenario
async def signal(client: Client, tq: str):
    h = await within(client.start_workflow(SignalWorkflow.run, id=unique("signal"), task_queue=tq))
    await wait_until_waiting(h)
    await within(h.signal(SignalWorkflow.deliver, "sig"))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def query_then_signal(client: Client, tq: str):
    h = await within(client.start_workflow(SignalWorkflow.run, id=unique("query"), task_queue=tq))
    await wait_until_waiting(h)
    state = await within(h.query(SignalWorkflow.state))
    await within(h.signal(SignalWorkflow.deliver, "q"))
    return f"query {state!r}, {await outcome_of(h)}", h.id, h.first_execution_run_id


@scenario
async def cancel(client: Client, tq: str):
    h = await within(client.start_workflow(WaitForeverWorkflow.run, id=unique("cancel"), task_queue=tq))
    await wait_until_waiting(h)
    await within(h.cancel())
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def terminate(client: Client, tq: str):
    h = await within(client.start_workflow(
        WaitForeverWorkflow.run, id=unique("terminate"), task_queue=tq))
    await wait_until_waiting(h)
    await within(h.terminate(reason="diff"))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def continue_as_new(client: Client, tq: str):
    h = await within(client.start_workflow(
        ContinueAsNewWorkflow.run, CounterInput(count=0, target=3), id=unique("can"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def signal_with_start(client: Client, tq: str):
    h = await within(client.start_workflow(
        SignalWorkflow.run, id=unique("sws"), task_queue=tq,
        start_signal="deliver", start_signal_args=["sws"]))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def signal_with_start_running(client: Client, tq: str):
    wf_id = unique("sws-running")
    h = await within(client.start_workflow(SignalWorkflow.run, id=wf_id, task_queue=tq))
    await wait_until_waiting(h)
    await within(client.start_workflow(
        SignalWorkflow.run, id=wf_id, task_queue=tq,
        start_signal="deliver", start_signal_args=["sws2"]))
    return await outcome_of(h), h.id, h.first_execution_run_id


async def run_histories(client: Client, wf_id: str, run_id: str) -> List[List[str]]:
    """Event types of every run of the chain that starts at run_id (following continue-as-new)."""
    runs: List[List[str]] = []
    next_run = run_id
    while next_run:
        history = await within(client.get_workflow_handle(wf_id, run_id=next_run).fetch_history())
        runs.append([event_type_name(e.event_type) for e in history.events])
        last = history.events[-1]
        next_run = ""
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            next_run = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        assert len(runs) < 20, "runaway continue-as-new chain"
    return runs


async def run_on(address: str, name: str) -> Tuple[str, List[List[str]]]:
    client = await within(Client.connect(address, namespace="default"))
    tq = unique("diff-tq")
    async with new_worker(client, tq):
        outcome, wf_id, run_id = await within(SCENARIOS[name](client, tq), 60)
    return outcome, await run_histories(client, wf_id, run_id)


def render(runs: List[List[str]]) -> List[str]:
    lines: List[str] = []
    for i, run in enumerate(runs):
        lines.append(f"--- run {i + 1}")
        lines.extend(run)
    return lines


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_same_history(name: str, reference_server, server, workdir):
    (ref_outcome, ref_runs), (sut_outcome, sut_runs) = await asyncio.gather(
        run_on(reference_server.address, name), run_on(server.address, name))

    record = {"scenario": name, "reference": {"outcome": ref_outcome, "runs": ref_runs},
              server.kind: {"outcome": sut_outcome, "runs": sut_runs}}
    (workdir / f"differential-{name}.json").write_text(json.dumps(record, indent=2))
    print(f"\n[{name}] reference: {ref_outcome}")
    print("\n".join(render(ref_runs)))

    if ref_runs != sut_runs:
        diff = "\n".join(difflib.unified_diff(
            render(ref_runs), render(sut_runs), "reference", server.kind, lineterm=""))
        pytest.fail(f"event type sequences differ for {name}:\n{diff}")
    assert sut_outcome == ref_outcome
