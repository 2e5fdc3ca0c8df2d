"""Ordinary Temporal Python SDK usage against the server under test."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    TerminatedError,
    TimeoutError,
    WorkflowAlreadyStartedError,
)

import sundial_flags
from helpers import (
    history_event_types,
    new_worker,
    unique,
    wait_for_event,
    wait_until_waiting,
    within,
)
from sundial_workflows import (
    ActivityCancelWorkflow,
    ActivityFailureWorkflow,
    BufferedSignalsWorkflow,
    ContinueAsNewWorkflow,
    CounterInput,
    FailingWorkflow,
    FailTaskUntilAllowedWorkflow,
    HeartbeatTimeoutWorkflow,
    HelloActivityWorkflow,
    LocalActivityWorkflow,
    ParentWorkflow,
    PatchAndMemoWorkflow,
    RetriedWorkflow,
    RetryWorkflow,
    SignalWorkflow,
    TimerCancelWorkflow,
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


async def test_workflow_failure(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            FailingWorkflow.run, id=unique("wf-fail"), task_queue=tq))
        with pytest.raises(WorkflowFailureError) as excinfo:
            await within(handle.result())
    assert isinstance(excinfo.value.cause, ApplicationError)
    assert excinfo.value.cause.type == "Boom"
    assert "workflow fails on purpose" in str(excinfo.value.cause)
    desc = await within(handle.describe())
    assert desc.status == WorkflowExecutionStatus.FAILED


@pytest.mark.parametrize("kind,expected", [
    ("NonRetryable", "ApplicationError(NonRetryable, non_retryable=True) retry_state=NON_RETRYABLE_FAILURE"),
    ("Fatal", "ApplicationError(Fatal, non_retryable=False) retry_state=NON_RETRYABLE_FAILURE"),
    ("Exhaust", "ApplicationError(Exhaust, non_retryable=False) retry_state=MAXIMUM_ATTEMPTS_REACHED"),
])
async def test_activity_failure(client: Client, kind: str, expected: str):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            ActivityFailureWorkflow.run, kind, id=unique("act-fail"), task_queue=tq))
        assert await within(handle.result()) == expected
    types = await history_event_types(handle)
    assert types.count("ActivityTaskFailed") == 1
    assert types.count("ActivityTaskStarted") == 1


@pytest.mark.parametrize("mode", ["started-wait", "started-try", "unstarted-wait", "unstarted-try"])
async def test_activity_cancellation(client: Client, mode: str):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            ActivityCancelWorkflow.run, args=[mode, unique("no-worker-tq")],
            id=unique("act-cancel"), task_queue=tq))
        assert await within(handle.result()) == "CancelledError retry_state=CANCEL_REQUESTED"
    types = await history_event_types(handle)
    assert "ActivityTaskCancelRequested" in types
    if mode.endswith("-wait"):
        assert "ActivityTaskCanceled" in types
        assert ("ActivityTaskStarted" in types) == mode.startswith("started")


async def test_timer_cancelled_by_signal(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            TimerCancelWorkflow.run, id=unique("timer-cancel"), task_queue=tq))
        await wait_for_event(handle, "TimerStarted")
        await within(handle.signal(TimerCancelWorkflow.deliver, "now"))
        assert await within(handle.result()) == "signalled now"
    types = await history_event_types(handle)
    assert "TimerCanceled" in types and "TimerFired" not in types


async def test_local_activity(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            LocalActivityWorkflow.run, "local", id=unique("local-act"), task_queue=tq))
        assert await within(handle.result()) == "Hello, local!"
    types = await history_event_types(handle)
    assert "MarkerRecorded" in types and "ActivityTaskScheduled" not in types


async def test_patch_and_upsert_memo(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            PatchAndMemoWorkflow.run, id=unique("patch-memo"), task_queue=tq, memo={"initial": 1}))
        assert await within(handle.result()) == "patched"
    desc = await within(handle.describe())
    assert await desc.memo() == {"initial": 1, "stage": "patched"}
    types = await history_event_types(handle)
    assert "MarkerRecorded" in types and "WorkflowPropertiesModified" in types


async def test_run_timeout(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            WaitForeverWorkflow.run, id=unique("run-timeout"), task_queue=tq,
            run_timeout=timedelta(seconds=2)))
        with pytest.raises(WorkflowFailureError) as excinfo:
            await within(handle.result())
    assert isinstance(excinfo.value.cause, TimeoutError)
    desc = await within(handle.describe())
    assert desc.status == WorkflowExecutionStatus.TIMED_OUT


async def test_workflow_task_failure_is_retried(client: Client):
    """The first failure is recorded; the transient retries are not; the task eventually passes."""
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            FailTaskUntilAllowedWorkflow.run, id=unique("wft-fail"), task_queue=tq,
            task_timeout=timedelta(seconds=2)))
        await wait_for_event(handle, "WorkflowTaskFailed")
        await asyncio.sleep(1.0)
        sundial_flags.allow(handle.id)
        assert await within(handle.result()) == "passed"
    history = await within(handle.fetch_history())
    failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert len(failed) == 1
    assert (failed[0].workflow_task_failed_event_attributes.cause
            == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE)


async def test_buffered_signal_vetoes_completion(client: Client):
    """A signal that arrives while the completing task is in flight is not lost: the completion
    is rejected (UNHANDLED_COMMAND) and the workflow sees the signal on the retry."""
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            BufferedSignalsWorkflow.run, args=["complete", 1], id=unique("veto"), task_queue=tq))
        assert await within(handle.result()) == "1 signals"
    history = await within(handle.fetch_history())
    causes = [e.workflow_task_failed_event_attributes.cause for e in history.events
              if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert causes == [WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND]


async def test_workflow_retry_policy(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            RetriedWorkflow.run, id=unique("wf-retry"), task_queue=tq,
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)))
        assert await within(handle.result()) == 2
    first = await within(
        client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id).describe())
    assert first.status == WorkflowExecutionStatus.FAILED
    latest = await within(client.get_workflow_handle(handle.id).describe())
    assert latest.status == WorkflowExecutionStatus.COMPLETED
    assert latest.run_id != handle.first_execution_run_id


async def test_child_workflow(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            ParentWorkflow.run, "child", id=unique("parent"), task_queue=tq))
        assert await within(handle.result()) == "CHILD"
    child = await within(client.get_workflow_handle(f"{handle.id}-child").describe())
    assert child.status == WorkflowExecutionStatus.COMPLETED
    assert child.parent_id == handle.id
