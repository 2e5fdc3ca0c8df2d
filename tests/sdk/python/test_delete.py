"""DeleteWorkflowExecution and ResetStickyTaskQueue, on the reference server and on the target:
a deleted run (closed or still running) is gone, and other runs are untouched."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    ResetStickyTaskQueueRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

import harness
from helpers import new_worker, unique, wait_until_waiting, within
from sundial_workflows import HelloActivityWorkflow, SignalWorkflow


async def _delete(client: Client, workflow_id: str, run_id: str) -> None:
    await within(client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
        namespace="default",
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id))))


async def _gone(client: Client, workflow_id: str) -> None:
    """Deletion is asynchronous on the reference server (tens of seconds under load): wait until
    describe says NotFound."""
    for _ in range(600):
        try:
            await within(client.get_workflow_handle(workflow_id).describe())
        except RPCError as e:
            assert e.status == RPCStatusCode.NOT_FOUND
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} still exists after delete")


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_delete_closed_and_running_runs(workdir, kind):
    kind = "reference" if kind == "reference" else harness.target()
    srv = harness.ServerProcess(kind, workdir, unique(f"delete-{kind}"))
    await srv.astart()
    try:
        client = await within(Client.connect(srv.address, namespace="default"))
        tq = unique("tq")
        async with new_worker(client, tq):
            done = await within(client.start_workflow(
                HelloActivityWorkflow.run, "x", id=unique("done"), task_queue=tq))
            await within(done.result())
            running = await within(client.start_workflow(
                SignalWorkflow.run, id=unique("running"), task_queue=tq))
            await wait_until_waiting(running)
            kept = await within(client.start_workflow(
                SignalWorkflow.run, id=unique("kept"), task_queue=tq))
            await wait_until_waiting(kept)

            await within(client.workflow_service.reset_sticky_task_queue(ResetStickyTaskQueueRequest(
                namespace="default",
                execution=WorkflowExecution(workflow_id=kept.id))))
            await _delete(client, done.id, done.result_run_id)
            await _delete(client, running.id, running.result_run_id)
            await _gone(client, done.id)
            await _gone(client, running.id)
            # Their visibility records went with them (at once on the target: in the same
            # transaction as the run).
            listed = None
            for _ in range(1 if kind != "reference" else 600):
                listed = [w.id async for w in client.list_workflows(f"TaskQueue = '{tq}'")]
                if listed == [kept.id]:
                    break
                await asyncio.sleep(0.1)
            assert listed == [kept.id]
            desc = await within(kept.describe())
            assert desc.status == WorkflowExecutionStatus.RUNNING
            await within(kept.signal(SignalWorkflow.deliver, "bye"))
            assert await within(kept.result()) == "bye"
    finally:
        srv.stop()
