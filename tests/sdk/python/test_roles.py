"""Sundial's roles as separate processes (`--services`): one process per role on one store.

Each test runs its own four-process deployment (frontend, history, matching, worker), whatever
SUNDIAL_DEPLOYMENT says, and kills or adds processes of it. Sundial only: the reference dev
server runs every role in one process.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    DescribeWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import harness
from helpers import new_worker, unique, within
from sundial_workflows import HelloActivityWorkflow

pytestmark = pytest.mark.skipif(harness.target() != "sundial",
                                reason="Sundial's own process layout")

WORKFLOWS = 30


async def start_all(client: Client, tq: str, prefix: str, count: int):
    return await asyncio.gather(*(
        client.start_workflow(HelloActivityWorkflow.run, f"{prefix}-{i}", id=f"{prefix}-{i}",
                              task_queue=tq)
        for i in range(count)))


async def assert_each_completed_once(handles, prefix: str) -> None:
    results = await within(asyncio.gather(*(h.result() for h in handles)), 120)
    assert sorted(results) == sorted(f"Hello, {prefix}-{i}!" for i in range(len(handles)))
    for handle in handles:
        events = [e async for e in handle.fetch_history_events()]
        # Nothing written twice: event ids run 1..n, and the run completed once.
        assert [e.event_id for e in events] == list(range(1, len(events) + 1))
        assert sum(1 for e in events if e.HasField(
            "workflow_execution_completed_event_attributes")) == 1


async def assert_unavailable(client: Client, role: str, workflow_id: str, tq: str) -> None:
    """A call that needs the killed role fails fast with UNAVAILABLE (not INTERNAL, no hang)."""
    service = client.workflow_service
    if role == "history":
        call = service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=workflow_id)),
            retry=False, timeout=timedelta(seconds=15))
    else:
        call = service.describe_task_queue(DescribeTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=tq)),
            retry=False, timeout=timedelta(seconds=15))
    with pytest.raises(RPCError) as failed:
        await within(call, 20)
    assert failed.value.status == RPCStatusCode.UNAVAILABLE, failed.value


@pytest.mark.parametrize("role", ["history", "matching"])
async def test_kill9_of_a_role_under_load_loses_nothing(workdir, role):
    """Workflows run while one role's process is killed with SIGKILL and started again: the
    frontend answers UNAVAILABLE meanwhile, and every workflow started, before or during the
    outage, completes once."""
    srv = harness.ServerProcess("sundial", workdir, unique(f"roles-kill-{role}"), split=True)
    await srv.astart()
    try:
        client = await within(Client.connect(srv.address, namespace="default"))
        tq = unique("tq")
        async with new_worker(client, tq):
            before = await within(start_all(client, tq, unique("before"), WORKFLOWS))
            prefix_before = before[0].id.rsplit("-", 1)[0]
            srv.kill9_role(role)
            await assert_unavailable(client, role, before[0].id, tq)
            # Started while the role is down: the SDK retries until it is back.
            prefix_during = unique("during")
            during = asyncio.ensure_future(start_all(client, tq, prefix_during, WORKFLOWS // 3))
            await asyncio.sleep(0.5)
            srv.restart_role(role)
            during = await within(during, 60)
            await assert_each_completed_once(before, prefix_before)
            await assert_each_completed_once(during, prefix_during)
    finally:
        srv.stop()


async def test_a_worker_on_one_frontend_gets_the_tasks_of_workflows_started_on_another(workdir):
    srv = harness.ServerProcess("sundial", workdir, unique("roles-frontends"), split=True)
    await srv.astart()
    try:
        other = await srv.start_frontend()
        polled = await within(Client.connect(srv.address, namespace="default"))
        starter = await within(Client.connect(other, namespace="default"))
        tq = unique("tq")
        async with new_worker(polled, tq):
            prefix = unique("two-frontends")
            handles = await within(start_all(starter, tq, prefix, 5))
            await assert_each_completed_once(handles, prefix)
    finally:
        srv.stop()


async def add_attributes(client: Client, attributes: dict) -> None:
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    await within(client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="default", search_attributes=attributes)))


async def failed_workflow_tasks(handle) -> int:
    from temporalio.api.enums.v1 import EventType

    events = [e async for e in handle.fetch_history_events()]
    return sum(1 for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)


async def test_a_search_attribute_added_on_the_frontend_is_known_to_history_at_once(workdir):
    """AddSearchAttributes answers once the history process knows the attribute: a workflow
    started right after upserts it without a failed workflow task (the history process's
    registry already holds the namespace, with the attributes it had before)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.worker import Worker

    from sundial_workflows import SearchAttributesWorkflow, UpsertKeywordWorkflow

    srv = harness.ServerProcess("sundial", workdir, unique("roles-attributes"), split=True)
    await srv.astart()
    try:
        client = await within(Client.connect(srv.address, namespace="default"))
        tq = unique("tq")
        async with Worker(client, task_queue=tq,
                          workflows=[UpsertKeywordWorkflow, SearchAttributesWorkflow]):
            await add_attributes(client, {
                "CustomKeywordField": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD})
            # The history process knows the namespace with its first attribute once a
            # workflow upserts it without failing (the namespace may be new to it).
            for attempt in range(100):
                handle = await within(client.start_workflow(
                    UpsertKeywordWorkflow.run, id=unique("first"), task_queue=tq))
                await within(handle.result())
                if await failed_workflow_tasks(handle) == 0:
                    break
            else:
                pytest.fail("the first attribute never became known to history")
            await add_attributes(client, {
                "CustomIntField": IndexedValueType.INDEXED_VALUE_TYPE_INT})
            handle = await within(client.start_workflow(
                SearchAttributesWorkflow.run, id=unique("attrs"), task_queue=tq))
            assert await within(handle.result()) == "blue 7"
            assert await failed_workflow_tasks(handle) == 0
    finally:
        srv.stop()
