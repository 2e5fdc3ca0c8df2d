"""Ordinary Temporal Python SDK usage against the server under test."""

from __future__ import annotations

import time

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError, TerminatedError, WorkflowAlreadyStartedError

from helpers import new_worker, unique, wait_until_waiting, within
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


async def test_hello_activity_and_timer(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        result = await within(client.execute_workflow(
            HelloActivityWorkflow.run, "Sundial", id=unique("hello"), task_queue=tq))
    assert result == "Hello, Sundial!"


async def test_activity_retries_until_success(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        attempt = await within(client.execute_workflow(
            RetryWorkflow.run, 3, id=unique("retry"), task_queue=tq))
    assert attempt == 3


async def test_heartbeat_timeout(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        timeout_type = await within(client.execute_workflow(
            HeartbeatTimeoutWorkflow.run, id=unique("heartbeat"), task_queue=tq))
    assert timeout_type == "HEARTBEAT"


async def test_timer(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        started = time.monotonic()
        workflow_elapsed = await within(client.execute_workflow(
            TimerWorkflow.run, 2.0, id=unique("timer"), task_queue=tq))
        wall_elapsed = time.monotonic() - started
    assert wall_elapsed >= 2.0
    assert workflow_elapsed >= 2.0


async def test_signal(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            SignalWorkflow.run, id=unique("signal"), task_queue=tq))
        await wait_until_waiting(handle)
        await within(handle.signal(SignalWorkflow.deliver, "ping"))
        assert await within(handle.result()) == "ping"


async def test_signal_with_start(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            SignalWorkflow.run, id=unique("sws"), task_queue=tq,
            start_signal="deliver", start_signal_args=["from signal-with-start"]))
        assert await within(handle.result()) == "from signal-with-start"


async def test_signal_with_start_existing_workflow(client: Client):
    """Signal-with-start on a running workflow signals it instead of starting a new run."""
    tq = unique("tq")
    wf_id = unique("sws-existing")
    async with new_worker(client, tq):
        first = await within(client.start_workflow(SignalWorkflow.run, id=wf_id, task_queue=tq))
        await wait_until_waiting(first)
        second = await within(client.start_workflow(
            SignalWorkflow.run, id=wf_id, task_queue=tq,
            start_signal="deliver", start_signal_args=["second"]))
        assert second.result_run_id == first.result_run_id
        assert await within(first.result()) == "second"


async def test_query(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            SignalWorkflow.run, id=unique("query"), task_queue=tq))
        await wait_until_waiting(handle)
        assert await within(handle.query(SignalWorkflow.state)) == "waiting"
        await within(handle.signal(SignalWorkflow.deliver, "done"))
        assert await within(handle.result()) == "done"
        # Queries still work on a closed workflow.
        assert await within(handle.query(SignalWorkflow.state)) == "got done"


async def test_cancel(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            WaitForeverWorkflow.run, id=unique("cancel"), task_queue=tq))
        await wait_until_waiting(handle)
        await within(handle.cancel())
        with pytest.raises(WorkflowFailureError) as excinfo:
            await within(handle.result())
    assert isinstance(excinfo.value.cause, CancelledError)
    desc = await within(handle.describe())
    assert desc.status == WorkflowExecutionStatus.CANCELED


async def test_terminate(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            WaitForeverWorkflow.run, id=unique("terminate"), task_queue=tq))
        await wait_until_waiting(handle)
        await within(handle.terminate(reason="test says stop"))
        with pytest.raises(WorkflowFailureError) as excinfo:
            await within(handle.result())
    assert isinstance(excinfo.value.cause, TerminatedError)
    assert "test says stop" in str(excinfo.value.cause)
    desc = await within(handle.describe())
    assert desc.status == WorkflowExecutionStatus.TERMINATED


async def test_continue_as_new(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            ContinueAsNewWorkflow.run, CounterInput(count=0, target=3),
            id=unique("can"), task_queue=tq))
        # result() follows the chain of runs to the last one.
        assert await within(handle.result()) == 3
    first = await within(
        client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id).describe())
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    latest = await within(client.get_workflow_handle(handle.id).describe())
    assert latest.status == WorkflowExecutionStatus.COMPLETED
    assert latest.run_id != handle.first_execution_run_id


async def test_already_started(client: Client):
    tq = unique("tq")
    wf_id = unique("dup")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(SignalWorkflow.run, id=wf_id, task_queue=tq))
        with pytest.raises(WorkflowAlreadyStartedError) as excinfo:
            await within(client.start_workflow(SignalWorkflow.run, id=wf_id, task_queue=tq))
        assert excinfo.value.workflow_id == wf_id
        await within(handle.signal(SignalWorkflow.deliver, "bye"))
        assert await within(handle.result()) == "bye"
