"""Batch operations (StartBatchOperation and friends, `temporal workflow terminate --query`,
`temporal batch ...`), with the same assertions on the reference server and on the target. Jobs
run asynchronously on both, so the tests wait for a job's state, never for a time."""

from __future__ import annotations

import asyncio
import uuid
from typing import List

import pytest
from temporalio.api.batch.v1 import (
    BatchOperationCancellation,
    BatchOperationReset,
    BatchOperationSignal,
    BatchOperationTermination,
)
from google.protobuf.empty_pb2 import Empty
from temporalio.api.common.v1 import Payloads, ResetOptions, WorkflowExecution
from temporalio.api.enums.v1 import BatchOperationState, EventType
from temporalio.api.workflowservice.v1 import (
    DescribeBatchOperationRequest,
    ListBatchOperationsRequest,
    StartBatchOperationRequest,
    StopBatchOperationRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.converter import default as default_converter
from temporalio.service import RPCError, RPCStatusCode

import harness
from helpers import STEP_TIMEOUT, connect_either, new_worker, unique, wait_until_waiting, within
from sundial_workflows import SignalWorkflow, WaitForeverWorkflow
from test_cli import temporal

RUNNING = BatchOperationState.BATCH_OPERATION_STATE_RUNNING


async def describe(client: Client, job_id: str):
    return await within(client.workflow_service.describe_batch_operation(
        DescribeBatchOperationRequest(namespace="default", job_id=job_id)))


async def finished(client: Client, job_id: str, timeout: float = 60):
    """The job's description once it has stopped running."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await describe(client, job_id)
        if answer.state != RUNNING:
            return answer
        assert asyncio.get_running_loop().time() < deadline, f"job {job_id} still running"
        await asyncio.sleep(0.2)


async def start_waiting(client: Client, tq: str, n: int) -> List:
    return [await within(client.start_workflow(
        WaitForeverWorkflow.run, id=f"{tq}-{i}", task_queue=tq)) for i in range(n)]


async def listed_count(client: Client, query: str, expected: int) -> None:
    """Waits until `query` counts `expected` runs (the reference server's visibility lags)."""
    deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT
    while (await within(client.count_workflows(query))).count != expected:
        assert asyncio.get_running_loop().time() < deadline, query
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_terminate_by_query(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("batch-terminate")
    handles = await start_waiting(client, tq, 3)
    query = f"TaskQueue = '{tq}' AND ExecutionStatus = 'Running'"
    await listed_count(client, query, 3)
    job_id = str(uuid.uuid4())
    await within(client.workflow_service.start_batch_operation(StartBatchOperationRequest(
        namespace="default", job_id=job_id, reason="batch says stop", visibility_query=query,
        termination_operation=BatchOperationTermination(identity="batch-test"))))

    done = await finished(client, job_id)
    assert done.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
    assert (done.total_operation_count, done.complete_operation_count,
            done.failure_operation_count) == (3, 3, 0)
    assert done.reason == "batch says stop"
    assert done.identity == "batch-test"
    assert done.close_time.seconds > 0
    for h in handles:
        assert (await within(h.describe())).status == WorkflowExecutionStatus.TERMINATED

    # The job is listed among batch operations, not among the namespace's workflows.
    jobs = await within(client.workflow_service.list_batch_operations(
        ListBatchOperationsRequest(namespace="default")))
    assert job_id in [op.job_id for op in jobs.operation_info]
    assert [w async for w in client.list_workflows(f"WorkflowId = '{job_id}'")] == []

    # A job id is used once.
    with pytest.raises(RPCError) as err:
        await within(client.workflow_service.start_batch_operation(StartBatchOperationRequest(
            namespace="default", job_id=job_id, reason="again", visibility_query=query,
            termination_operation=BatchOperationTermination())))
    assert err.value.status == RPCStatusCode.ALREADY_EXISTS


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_signal_and_cancel_a_list_of_executions(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("batch-signal")
    async with new_worker(client, tq):
        signalled = [await within(client.start_workflow(
            SignalWorkflow.run, id=f"{tq}-s{i}", task_queue=tq)) for i in range(2)]
        for h in signalled:
            await wait_until_waiting(h)
        job_id = str(uuid.uuid4())
        payloads = Payloads(payloads=default_converter().payload_converter.to_payloads(["hi"]))
        await within(client.workflow_service.start_batch_operation(StartBatchOperationRequest(
            namespace="default", job_id=job_id, reason="say hi",
            executions=[WorkflowExecution(workflow_id=h.id) for h in signalled],
            signal_operation=BatchOperationSignal(signal="deliver", input=payloads))))
        done = await finished(client, job_id)
        assert done.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
        assert done.complete_operation_count == 2
        for h in signalled:
            assert await within(h.result()) == "hi"

        cancelled = await within(client.start_workflow(
            WaitForeverWorkflow.run, id=f"{tq}-c", task_queue=tq))
        await wait_until_waiting(cancelled)
        job_id = str(uuid.uuid4())
        await within(client.workflow_service.start_batch_operation(StartBatchOperationRequest(
            namespace="default", job_id=job_id, reason="cancel it",
            executions=[WorkflowExecution(workflow_id=cancelled.id)],
            cancellation_operation=BatchOperationCancellation())))
        assert (await finished(client, job_id)).complete_operation_count == 1
        with pytest.raises(Exception):
            await within(cancelled.result())
        assert (await within(cancelled.describe())).status == WorkflowExecutionStatus.CANCELED


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_a_stopped_job_stops(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("batch-stop")
    await start_waiting(client, tq, 4)
    query = f"TaskQueue = '{tq}'"
    await listed_count(client, query, 4)
    job_id = str(uuid.uuid4())
    # One termination every 10 s: the job is still at its first runs when it is stopped.
    await within(client.workflow_service.start_batch_operation(StartBatchOperationRequest(
        namespace="default", job_id=job_id, reason="slowly", visibility_query=query,
        max_operations_per_second=0.1, termination_operation=BatchOperationTermination())))
    assert (await describe(client, job_id)).state == RUNNING
    await within(client.workflow_service.stop_batch_operation(StopBatchOperationRequest(
        namespace="default", job_id=job_id, reason="enough")))
    stopped = await finished(client, job_id)
    assert stopped.state == BatchOperationState.BATCH_OPERATION_STATE_FAILED
    running = (await within(client.count_workflows(
        f"{query} AND ExecutionStatus = 'Running'"))).count
    assert running >= 2


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_bad_batch_requests_are_refused(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)

    async def refused(request: StartBatchOperationRequest) -> RPCError:
        with pytest.raises(RPCError) as err:
            await within(client.workflow_service.start_batch_operation(request))
        return err.value

    err = await refused(StartBatchOperationRequest(
        namespace="default", job_id="x", visibility_query="WorkflowType = 'a'",
        termination_operation=BatchOperationTermination()))
    assert err.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.message == "must provide required parameters: BatchType,Reason,Namespace, " \
        "AND one of (Query OR Executions OR TargetExecutions)"
    err = await refused(StartBatchOperationRequest(
        namespace="default", reason="r", visibility_query="WorkflowType = 'a'",
        termination_operation=BatchOperationTermination()))
    assert (err.status, err.message) == (RPCStatusCode.INVALID_ARGUMENT,
                                         "JobId is not set on request.")
    err = await refused(StartBatchOperationRequest(
        namespace="default", job_id=str(uuid.uuid4()), reason="r",
        visibility_query="WorkflowId = ", termination_operation=BatchOperationTermination()))
    assert err.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.message.startswith("invalid visibility query: syntax error at position"), err
    # A query that parses but names what is not there starts a job, which fails.
    job_id = str(uuid.uuid4())
    await within(client.workflow_service.start_batch_operation(StartBatchOperationRequest(
        namespace="default", job_id=job_id, reason="r", visibility_query="NoSuchAttribute = 'a'",
        termination_operation=BatchOperationTermination())))
    assert (await finished(client, job_id)).state == \
        BatchOperationState.BATCH_OPERATION_STATE_FAILED
    with pytest.raises(RPCError) as stop:
        await within(client.workflow_service.stop_batch_operation(StopBatchOperationRequest(
            namespace="default", job_id="x")))
    assert (stop.value.status, stop.value.message) == (RPCStatusCode.INVALID_ARGUMENT,
                                                       "Reason is not set on request.")


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_reset_to_the_first_workflow_task_by_query(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("batch-reset")
    async with new_worker(client, tq):
        handles = [await within(client.start_workflow(
            SignalWorkflow.run, id=f"{tq}-{i}", task_queue=tq)) for i in range(2)]
        for h in handles:
            await wait_until_waiting(h)
        query = f"TaskQueue = '{tq}' AND ExecutionStatus = 'Running'"
        await listed_count(client, query, 2)
        job_id = str(uuid.uuid4())
        await within(client.workflow_service.start_batch_operation(StartBatchOperationRequest(
            namespace="default", job_id=job_id, reason="start over", visibility_query=query,
            reset_operation=BatchOperationReset(
                options=ResetOptions(first_workflow_task=Empty())))))
        done = await finished(client, job_id)
        assert done.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
        assert done.complete_operation_count == 2
        for h in handles:
            original = await within(
                client.get_workflow_handle(h.id, run_id=h.result_run_id).describe())
            assert original.status == WorkflowExecutionStatus.TERMINATED
            current = await within(client.get_workflow_handle(h.id).describe())
            assert current.run_id != h.result_run_id
            assert current.status == WorkflowExecutionStatus.RUNNING
            await within(client.get_workflow_handle(h.id).signal(SignalWorkflow.deliver, "again"))
            assert await within(client.get_workflow_handle(h.id).result()) == "again"


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_bad_reset_batches_are_refused(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    for operation, message in [
        (BatchOperationReset(), "unknown batch reset type Unspecified"),
        (BatchOperationReset(options=ResetOptions()), "batch reset missing target"),
    ]:
        with pytest.raises(RPCError) as err:
            await within(client.workflow_service.start_batch_operation(StartBatchOperationRequest(
                namespace="default", job_id=str(uuid.uuid4()), reason="r",
                visibility_query="WorkflowType = 'a'", reset_operation=operation)))
        assert (err.value.status, err.value.message) == (RPCStatusCode.INVALID_ARGUMENT, message)


async def test_cli_terminate_by_query_and_batch_commands(server):
    client = await connect_either("target", None, server)
    tq = unique("batch-cli")
    handles = await start_waiting(client, tq, 2)
    res = await temporal(server, "workflow", "terminate", "--query", f"TaskQueue = '{tq}'",
                         "--reason", "cli batch", "--yes")
    assert res.returncode == 0, res.describe()
    listed = (await temporal(server, "batch", "list", "-o", "json")).json()
    assert listed, "the job is listed"
    for h in handles:
        deadline = asyncio.get_running_loop().time() + 60
        while (await within(h.describe())).status != WorkflowExecutionStatus.TERMINATED:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)
    job_ids = [j["jobId"] for j in listed]
    described = (await temporal(server, "batch", "describe", "--job-id", job_ids[0],
                                "-o", "json")).json()
    assert described["jobId"] == job_ids[0]


async def test_a_job_survives_kill9_and_terminates_each_run_once(workdir):
    """kill -9 the server while a job runs; after the restart the job finishes from its last
    heartbeat (after its heartbeat timeout), and every run was terminated exactly once."""
    srv = harness.ServerProcess(harness.target(), workdir, unique("batch-kill9"))
    await srv.astart()
    try:
        client = await within(Client.connect(srv.address, namespace="default"))
        tq = unique("batch-kill9")
        handles = await start_waiting(client, tq, 6)
        query = f"TaskQueue = '{tq}' AND ExecutionStatus = 'Running'"
        await listed_count(client, query, 6)
        job_id = str(uuid.uuid4())
        await within(client.workflow_service.start_batch_operation(StartBatchOperationRequest(
            namespace="default", job_id=job_id, reason="across a crash", visibility_query=query,
            max_operations_per_second=1, termination_operation=BatchOperationTermination())))
        # Some runs are terminated, not all, when the server dies.
        await listed_count(client, query, 4)
        srv.kill9()
        await srv.astart()
        client = await within(Client.connect(srv.address, namespace="default"))
        done = await finished(client, job_id, timeout=120)
        assert done.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
        for h in handles:
            events = [e.event_type async for e in client.get_workflow_handle(h.id)
                      .fetch_history_events()]
            terminated = [e for e in events if e == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED]
            assert len(terminated) == 1, h.id
    finally:
        srv.stop()
