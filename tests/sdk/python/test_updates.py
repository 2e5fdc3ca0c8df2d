"""Workflow updates through the Python SDK: validators, accepted/rejected/completed updates,
wait stages, speculative workflow tasks on idle workflows, and update-with-start."""

from __future__ import annotations

import pytest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from helpers import (
    history_event_types,
    new_worker,
    unique,
    wait_until_waiting,
    within,
)
from update_workflows import CounterUpdateWorkflow, UpdateWithStartWorkflow

UPDATE_EVENTS = ["WorkflowExecutionUpdateAccepted", "WorkflowExecutionUpdateCompleted"]
# What an update on an idle workflow adds: its (speculative, then kept) workflow task and the
# update's two events.
SPECULATIVE_TASK_AND_UPDATE = [
    "WorkflowTaskScheduled",
    "WorkflowTaskStarted",
    "WorkflowTaskCompleted",
    *UPDATE_EVENTS,
]


async def start_counter(client: Client, tq: str):
    handle = await within(client.start_workflow(
        CounterUpdateWorkflow.run, id=unique("counter"), task_queue=tq))
    await wait_until_waiting(handle)
    return handle


async def test_update_accepted_and_completed(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await start_counter(client, tq)
        assert await within(handle.execute_update(CounterUpdateWorkflow.add, 5)) == 5
        assert await within(handle.execute_update(CounterUpdateWorkflow.add, 3)) == 8
        assert await within(handle.query(CounterUpdateWorkflow.total)) == 8
        await within(handle.signal(CounterUpdateWorkflow.finish))
        assert await within(handle.result()) == 8
    types = await history_event_types(handle)
    assert types.count("WorkflowExecutionUpdateAccepted") == 2
    assert types.count("WorkflowExecutionUpdateCompleted") == 2
    history = await within(handle.fetch_history())
    accepted = [e for e in history.events if e.HasField(
        "workflow_execution_update_accepted_event_attributes")]
    completed = [e for e in history.events if e.HasField(
        "workflow_execution_update_completed_event_attributes")]
    # The accepted event holds the request, the completed event the outcome and points back.
    attrs = accepted[0].workflow_execution_update_accepted_event_attributes
    assert attrs.accepted_request.input.name == "add"
    assert attrs.accepted_request_message_id == f"{attrs.protocol_instance_id}/request"
    done = completed[0].workflow_execution_update_completed_event_attributes
    assert done.accepted_event_id == accepted[0].event_id
    assert done.meta.update_id == attrs.protocol_instance_id
    assert done.outcome.HasField("success")


async def test_update_rejected_by_validator_leaves_no_trace(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await start_counter(client, tq)
        before = await history_event_types(handle)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await within(handle.execute_update(CounterUpdateWorkflow.add, -1))
        assert isinstance(err.value.cause, ApplicationError)
        assert "negative" in str(err.value.cause)
        # The speculative task that carried it was discarded: no events at all.
        assert await history_event_types(handle) == before
        # A rejected update is gone: asking for it again finds nothing.
        update_id = unique("rejected")
        with pytest.raises(WorkflowUpdateFailedError):
            await within(handle.execute_update(CounterUpdateWorkflow.add, -2, id=update_id))
        with pytest.raises(RPCError) as missing:
            await within(handle.get_update_handle(update_id).result())
        assert missing.value.status == RPCStatusCode.NOT_FOUND
        # The workflow goes on as if nothing happened.
        assert await within(handle.execute_update(CounterUpdateWorkflow.add, 2)) == 2
        await within(handle.signal(CounterUpdateWorkflow.finish))
        assert await within(handle.result()) == 2
    assert await history_event_types(handle) == before + SPECULATIVE_TASK_AND_UPDATE + [
        "WorkflowExecutionSignaled",
        "WorkflowTaskScheduled",
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
        "WorkflowExecutionCompleted",
    ]


async def test_update_on_idle_workflow_uses_speculative_task(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await start_counter(client, tq)
        before = await history_event_types(handle)
        assert before[-1] == "WorkflowTaskCompleted"
        assert await within(handle.execute_update(CounterUpdateWorkflow.add, 7)) == 7
        assert await history_event_types(handle) == before + SPECULATIVE_TASK_AND_UPDATE
        # Repeating the update id returns the same outcome without running it again.
        update_id = unique("dedupe")
        assert await within(handle.execute_update(
            CounterUpdateWorkflow.add, 1, id=update_id)) == 8
        assert await within(handle.execute_update(
            CounterUpdateWorkflow.add, 1, id=update_id)) == 8
        assert await within(handle.query(CounterUpdateWorkflow.total)) == 8
        await within(handle.signal(CounterUpdateWorkflow.finish))
        assert await within(handle.result()) == 8


async def test_wait_for_accepted_then_result(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await start_counter(client, tq)
        update = await within(handle.start_update(
            CounterUpdateWorkflow.add_after_timer, 4,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED))
        # Accepted (the update is in history) but not completed: its timer is still running.
        types = await history_event_types(handle)
        assert "WorkflowExecutionUpdateAccepted" in types
        assert "WorkflowExecutionUpdateCompleted" not in types
        assert await within(update.result()) == 4
        # A handle made from the ids polls the outcome (PollWorkflowExecutionUpdate).
        again = handle.get_update_handle(update.id)
        assert await within(again.result()) == 4
        # An update that runs an activity: accepted first, its outcome later.
        update = await within(handle.start_update(
            CounterUpdateWorkflow.add_after_activity, 1,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED))
        assert await within(update.result()) == "Hello, update 1!"
        await within(handle.signal(CounterUpdateWorkflow.finish))
        assert await within(handle.result()) == 5


async def test_update_on_closed_workflow_fails(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await start_counter(client, tq)
        update_id = unique("before-close")
        assert await within(handle.execute_update(
            CounterUpdateWorkflow.add, 1, id=update_id)) == 1
        await within(handle.signal(CounterUpdateWorkflow.finish))
        assert await within(handle.result()) == 1
        # The outcome of an update the run completed stays available.
        assert await within(handle.get_update_handle(update_id).result()) == 1
        assert await within(handle.execute_update(
            CounterUpdateWorkflow.add, 1, id=update_id)) == 1
        with pytest.raises(RPCError) as err:
            await within(handle.execute_update(CounterUpdateWorkflow.add, 1))
        assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_update_with_start(client: Client):
    tq = unique("tq")
    wf_id = unique("uws")
    async with new_worker(client, tq):
        start_op = WithStartWorkflowOperation(
            UpdateWithStartWorkflow.run, "items", id=wf_id, task_queue=tq,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL)
        # The workflow does not exist: it is started, and its first task carries the update.
        assert await within(client.execute_update_with_start_workflow(
            UpdateWithStartWorkflow.put, "a", start_workflow_operation=start_op)) == 1
        handle = await within(start_op.workflow_handle())
        assert (await history_event_types(handle))[:6] == [
            "WorkflowExecutionStarted",
            "WorkflowTaskScheduled",
            "WorkflowTaskStarted",
            "WorkflowTaskCompleted",
            *UPDATE_EVENTS,
        ]
        # Running now: USE_EXISTING sends the update to the same run.
        use_existing = WithStartWorkflowOperation(
            UpdateWithStartWorkflow.run, "items", id=wf_id, task_queue=tq,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        update = await within(client.start_update_with_start_workflow(
            UpdateWithStartWorkflow.put, "b", start_workflow_operation=use_existing,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED))
        assert await within(update.result()) == 2
        assert (await within(use_existing.workflow_handle())).result_run_id == handle.result_run_id
        # FAIL on a running workflow: the start fails, and so does the update.
        fail = WithStartWorkflowOperation(
            UpdateWithStartWorkflow.run, "items", id=wf_id, task_queue=tq,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL)
        with pytest.raises(Exception):
            await within(client.execute_update_with_start_workflow(
                UpdateWithStartWorkflow.put, "c", start_workflow_operation=fail))
        # A rejected update-with-start update on the running workflow.
        with pytest.raises(WorkflowUpdateFailedError):
            await within(client.execute_update_with_start_workflow(
                UpdateWithStartWorkflow.put, "", start_workflow_operation=WithStartWorkflowOperation(
                    UpdateWithStartWorkflow.run, "items", id=wf_id, task_queue=tq,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)))
        await within(handle.signal(UpdateWithStartWorkflow.finish))
        assert await within(handle.result()) == "items: a, b"
    types = await history_event_types(handle)
    assert types.count("WorkflowExecutionUpdateAccepted") == 2
    assert types.count("WorkflowExecutionStarted") == 1


async def test_poll_unknown_update_is_not_found(client: Client):
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await start_counter(client, tq)
        with pytest.raises(RPCError) as err:
            await within(handle.get_update_handle(unique("nope")).result())
        assert err.value.status == RPCStatusCode.NOT_FOUND
        await within(handle.signal(CounterUpdateWorkflow.finish))
        await within(handle.result())


async def test_namespace_reports_update_capabilities(client: Client):
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    resp = await within(client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")))
    assert resp.namespace_info.capabilities.sync_update
    assert resp.namespace_info.capabilities.async_update
