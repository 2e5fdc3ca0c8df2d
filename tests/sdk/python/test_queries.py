"""Queries and workflow tasks, with the same assertions on the reference server and on the
target: a query that would overtake events waiting for a workflow task is held until a task
carries it (so its answer sees those events); reject conditions; a run that closed before its
first task cannot be queried."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowQueryRejectedError
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError, RPCStatusCode

from helpers import connect_either, new_worker, unique, wait_until_waiting, within
from sundial_workflows import SignalWorkflow

SERVERS = ["reference", "target"]


async def still_waiting(query: asyncio.Task, seconds: float = 1.0) -> None:
    """The query has not been answered after `seconds` (no worker to carry it)."""
    await asyncio.sleep(seconds)
    assert not query.done(), f"answered without a worker: {query.result()!r}"


@pytest.mark.parametrize("kind", SERVERS)
async def test_query_before_first_task_waits_for_it(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("query-tq")
    handle = await within(client.start_workflow(
        SignalWorkflow.run, id=unique("query-first"), task_queue=tq))
    query = asyncio.create_task(handle.query(SignalWorkflow.state))
    try:
        await still_waiting(query)
        async with new_worker(client, tq):
            # The first workflow task carries the query and the worker answers it there.
            assert await within(query) == "waiting"
            await within(handle.signal(SignalWorkflow.deliver, "done"))
            assert await within(handle.result()) == "done"
    finally:
        query.cancel()


@pytest.mark.parametrize("kind", SERVERS)
async def test_query_after_pending_signal_sees_it(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("query-tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            SignalWorkflow.run, id=unique("query-signal"), task_queue=tq))
        await wait_until_waiting(handle)
        assert await within(handle.query(SignalWorkflow.state)) == "waiting"
    # No worker now: the signal's workflow task waits, and so must a query sent after it.
    await within(handle.signal(SignalWorkflow.deliver, "late"))
    query = asyncio.create_task(handle.query(SignalWorkflow.state))
    try:
        await still_waiting(query)
        async with new_worker(client, tq):
            assert await within(query) == "got late"
            assert await within(handle.result()) == "late"
    finally:
        query.cancel()


@pytest.mark.parametrize("kind", SERVERS)
async def test_query_reject_conditions(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("query-tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            SignalWorkflow.run, id=unique("query-reject"), task_queue=tq))
        await wait_until_waiting(handle)
        # Open: no condition rejects.
        assert await within(handle.query(
            SignalWorkflow.state,
            reject_condition=QueryRejectCondition.NOT_COMPLETED_CLEANLY)) == "waiting"
        await within(handle.signal(SignalWorkflow.deliver, "x"))
        await within(handle.result())
        # Completed: NOT_OPEN rejects, NOT_COMPLETED_CLEANLY does not.
        with pytest.raises(WorkflowQueryRejectedError) as err:
            await within(handle.query(SignalWorkflow.state,
                                      reject_condition=QueryRejectCondition.NOT_OPEN))
        assert err.value.status.name == "COMPLETED"
        assert await within(handle.query(
            SignalWorkflow.state,
            reject_condition=QueryRejectCondition.NOT_COMPLETED_CLEANLY)) == "got x"

        terminated = await within(client.start_workflow(
            SignalWorkflow.run, id=unique("query-reject"), task_queue=tq))
        await wait_until_waiting(terminated)
        await within(terminated.terminate("stop"))
        with pytest.raises(WorkflowQueryRejectedError) as err:
            await within(terminated.query(
                SignalWorkflow.state,
                reject_condition=QueryRejectCondition.NOT_COMPLETED_CLEANLY))
        assert err.value.status.name == "TERMINATED"


@pytest.mark.parametrize("kind", SERVERS)
async def test_query_of_run_closed_before_first_task(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    handle = await within(client.start_workflow(
        SignalWorkflow.run, id=unique("query-closed"), task_queue=unique("no-worker")))
    await within(handle.terminate("never ran"))
    with pytest.raises(RPCError) as err:
        await within(handle.query(SignalWorkflow.state))
    assert err.value.status == RPCStatusCode.FAILED_PRECONDITION
