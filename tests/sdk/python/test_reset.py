"""ResetWorkflowExecution, checked with the same assertions on the reference server and on the
target: the new run keeps the history before the reset point, fails the workflow task there
with RESET_WORKFLOW in the server's name, re-applies later signals and runs on; a running base
run is terminated by the resetter."""

from __future__ import annotations

import uuid
from typing import List

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    EventType,
    ResetReapplyExcludeType,
    WorkflowTaskFailedCause,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from helpers import connect_either, event_type_name, new_worker, unique, wait_for_event, within
from sundial_workflows import CollectSignalsWorkflow
from test_cli import temporal

SERVERS = ["reference", "target"]


async def reset(client: Client, wf_id: str, run_id: str, finish_event_id: int, *,
                reason: str = "test reset", request_id: str = "",
                exclude: List[int] = ()) -> str:
    response = await within(client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace="default",
            workflow_execution=WorkflowExecution(workflow_id=wf_id, run_id=run_id),
            reason=reason,
            workflow_task_finish_event_id=finish_event_id,
            request_id=request_id or str(uuid.uuid4()),
            reset_reapply_exclude_types=list(exclude))))
    return response.run_id


async def events_of(handle: WorkflowHandle) -> List[HistoryEvent]:
    return list((await within(handle.fetch_history())).events)


def first_id(events: List[HistoryEvent], event_type: int) -> int:
    return next(e.event_id for e in events if e.event_type == event_type)


async def waiting_with_signal(client: Client, tq: str) -> WorkflowHandle:
    """A CollectSignalsWorkflow(2) whose activity is done and which has received `x`."""
    handle = await within(client.start_workflow(
        CollectSignalsWorkflow.run, 2, id=unique("reset"), task_queue=tq))
    await wait_for_event(handle, "WorkflowTaskCompleted", 2)
    await within(handle.signal(CollectSignalsWorkflow.add, "x"))
    await wait_for_event(handle, "WorkflowTaskCompleted", 3)
    return handle


def check_reset_prefix(base: List[HistoryEvent], new: List[HistoryEvent], finish: int,
                       base_run: str, new_run: str, reason: str) -> None:
    """The new run starts with the base run's events before the reset point, the last being the
    pending task's WorkflowTaskStarted, then WorkflowTaskFailed(RESET_WORKFLOW) written by the
    server. (The reference server sometimes writes that started event anew, in its own name: both
    forms are accepted.)"""
    started_id = finish - 1
    assert [e.event_type for e in new[:started_id - 1]] == \
        [e.event_type for e in base[:started_id - 1]]
    assert new[0].workflow_execution_started_event_attributes == \
        base[0].workflow_execution_started_event_attributes
    started, failed = new[started_id - 1], new[started_id]
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    if started.workflow_task_started_event_attributes.identity == "history-service":
        assert started.workflow_task_started_event_attributes.request_id == "emptyUuid"
    else:
        assert started == base[started_id - 1]
    assert failed.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    attrs = failed.workflow_task_failed_event_attributes
    assert attrs.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
    assert attrs.started_event_id == started_id
    assert attrs.failure.message == reason
    assert attrs.failure.HasField("reset_workflow_failure_info")
    assert attrs.identity == "history-service"
    assert (attrs.base_run_id, attrs.new_run_id) == (base_run, new_run)


@pytest.mark.parametrize("kind", SERVERS)
async def test_reset_running_workflow(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("reset-tq")
    async with new_worker(client, tq):
        handle = await waiting_with_signal(client, tq)
        base_run = handle.result_run_id
        base = await events_of(handle)
        finish = first_id(base, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)

        new_run = await reset(client, handle.id, base_run, finish)
        assert new_run and new_run != base_run

        # The base run was terminated by the resetter.
        old = await events_of(client.get_workflow_handle(handle.id, run_id=base_run))
        assert old[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
        terminated = old[-1].workflow_execution_terminated_event_attributes
        assert (terminated.reason, terminated.identity) == ("test reset", "history-resetter")

        # The new run is current: a signal by workflow id reaches it, and it finishes with the
        # re-applied `x` and the new `z`.
        current = client.get_workflow_handle(handle.id)
        assert (await within(current.describe())).run_id == new_run
        await within(current.signal(CollectSignalsWorkflow.add, "z"))
        assert await within(current.result()) == "Hello, reset! x,z"

        new = await events_of(client.get_workflow_handle(handle.id, run_id=new_run))
        check_reset_prefix(base, new, finish, base_run, new_run, "test reset")
        types = [event_type_name(e.event_type) for e in new]
        # After the failed task: the re-applied signal, then a new task on the normal queue.
        assert types[finish:finish + 2] == ["WorkflowExecutionSignaled", "WorkflowTaskScheduled"]
        scheduled = new[finish + 1].workflow_task_scheduled_event_attributes
        assert (scheduled.task_queue.name, scheduled.attempt) == (tq, 1)
        # The activity scheduled after the reset point ran again.
        assert types.count("ActivityTaskCompleted") == 1
        assert types[-1] == "WorkflowExecutionCompleted"


@pytest.mark.parametrize("kind", SERVERS)
async def test_reset_closed_workflow_without_signals(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("reset-tq")
    async with new_worker(client, tq):
        handle = await waiting_with_signal(client, tq)
        await within(handle.signal(CollectSignalsWorkflow.add, "y"))
        assert await within(handle.result()) == "Hello, reset! x,y"
        base_run = handle.result_run_id
        base = await events_of(handle)
        # Reset to the task that scheduled the activity, leaving signals out.
        finish = first_id(base, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        new_run = await reset(client, handle.id, base_run, finish, reason="again",
                              exclude=[ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL])

        # A closed base run is left as it was.
        assert (await within(client.get_workflow_handle(handle.id, run_id=base_run).describe())
                ).status == WorkflowExecutionStatus.COMPLETED
        current = client.get_workflow_handle(handle.id, run_id=new_run)
        await wait_for_event(current, "WorkflowTaskCompleted", 2)
        new = await events_of(current)
        check_reset_prefix(base, new, finish, base_run, new_run, "again")
        assert "WorkflowExecutionSignaled" not in [event_type_name(e.event_type) for e in new]
        await within(current.signal(CollectSignalsWorkflow.add, "a"))
        await within(current.signal(CollectSignalsWorkflow.add, "b"))
        assert await within(current.result()) == "Hello, reset! a,b"


@pytest.mark.parametrize("kind", SERVERS)
async def test_reset_rejects_bad_requests(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("reset-tq")
    async with new_worker(client, tq):
        handle = await waiting_with_signal(client, tq)
        run = handle.result_run_id
        events = await events_of(handle)
        last = events[-1].event_id
        scheduled = first_id(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)

        async def code_of(wf_id: str, finish: int, request_id: str = "x") -> RPCStatusCode:
            with pytest.raises(RPCError) as err:
                await within(client.workflow_service.reset_workflow_execution(
                    ResetWorkflowExecutionRequest(
                        namespace="default",
                        workflow_execution=WorkflowExecution(workflow_id=wf_id),
                        reason="bad", workflow_task_finish_event_id=finish,
                        request_id=request_id)))
            return err.value.status

        assert await code_of(handle.id, 1) == RPCStatusCode.INVALID_ARGUMENT
        assert await code_of(handle.id, last + 1) == RPCStatusCode.INVALID_ARGUMENT
        # Just after a completed task no workflow task is pending: not a reset point.
        assert await code_of(handle.id, scheduled + 1) == RPCStatusCode.INVALID_ARGUMENT
        assert await code_of(handle.id, 4, request_id="") == RPCStatusCode.INVALID_ARGUMENT
        assert await code_of(unique("missing"), 4) == RPCStatusCode.NOT_FOUND

        # None of that touched the run.
        assert (await within(handle.describe())).run_id == run
        assert len(await events_of(handle)) == len(events)
        await within(handle.signal(CollectSignalsWorkflow.add, "y"))
        assert await within(handle.result()) == "Hello, reset! x,y"


async def test_cli_reset_to_first_workflow_task(server, client: Client):
    """`temporal workflow reset --type FirstWorkflowTask` finds the point itself and resets."""
    tq = unique("reset-tq")
    async with new_worker(client, tq):
        handle = await waiting_with_signal(client, tq)
        res = await temporal(server, "workflow", "reset", "-w", handle.id,
                             "--type", "FirstWorkflowTask", "--reason", "from the cli")
        assert res.returncode == 0, res.describe()
        current = client.get_workflow_handle(handle.id)
        assert (await within(current.describe())).run_id != handle.result_run_id
        await within(current.signal(CollectSignalsWorkflow.add, "z"))
        assert await within(current.result()) == "Hello, reset! x,z"
