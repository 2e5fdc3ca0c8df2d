"""Visibility through the Python SDK: listing, counting and paging runs with Temporal's query
language, with the same assertions on the reference server and on the target.

The reference server writes visibility records asynchronously, so its checks wait until the
listing settles; Sundial writes a run's record in the commit of the change it describes, so on
the target every check must hold on its first try."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, List, TypeVar

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import IndexedValueType, WorkflowExecutionStatus
from temporalio.api.filter.v1 import StartTimeFilter, StatusFilter, WorkflowExecutionFilter
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import (
    GetSearchAttributesRequest,
    ListClosedWorkflowExecutionsRequest,
    ListOpenWorkflowExecutionsRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from helpers import STEP_TIMEOUT, connect_either, unique, within
from sundial_workflows import WaitForeverWorkflow

T = TypeVar("T")

CUSTOMER = SearchAttributeKey.for_keyword("VisCustomer")
PRIORITY = SearchAttributeKey.for_int("VisPriority")


async def settled(kind: str, read: Callable[[], Awaitable[T]], expected: T) -> T:
    """`read()` once it answers `expected`: at once on the target, within the step timeout on
    the reference server (whose visibility lags)."""
    value = await within(read())
    if kind == "target":
        assert value == expected
        return value
    deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT
    while value != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        value = await within(read())
    assert value == expected
    return value


async def register(client: Client) -> None:
    await within(client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace="default", search_attributes={
            "VisCustomer": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
            "VisPriority": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        })))


async def ids(client: Client, query: str, page_size: int = 1000) -> List[str]:
    return [w.id async for w in client.list_workflows(query, page_size=page_size)]


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_list_filter_page_and_count(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    await register(client)
    tq = unique("vis-tq")
    handles = []
    for i, (customer, priority) in enumerate([("c-1", 1), ("c-2", 5), ("c-3", 9)]):
        handles.append(await within(client.start_workflow(
            WaitForeverWorkflow.run, id=f"{tq}-{i}", task_queue=tq,
            memo={"note": f"memo {i}"},
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(CUSTOMER, customer), SearchAttributePair(PRIORITY, priority),
            ]))))
    await within(handles[0].terminate("listed as terminated"))
    every = f"TaskQueue = '{tq}'"

    # Open runs first, newest first; then closed ones by close time.
    await settled(kind, lambda: ids(client, every), [f"{tq}-2", f"{tq}-1", f"{tq}-0"])
    # Pages of one list the same runs in the same order.
    assert await within(ids(client, every, page_size=1)) == [f"{tq}-2", f"{tq}-1", f"{tq}-0"]
    assert await within(ids(client, f"{every} AND VisCustomer = 'c-2'")) == [f"{tq}-1"]
    assert await within(ids(client, f"{every} AND VisPriority >= 5")) == [f"{tq}-2", f"{tq}-1"]
    assert await within(ids(client, f"{every} AND ExecutionStatus = 'Terminated'")) == [f"{tq}-0"]
    assert await within(ids(client, f"{every} AND ExecutionStatus = 'Running' "
                                    f"AND VisCustomer IN ('c-1', 'c-3')")) == [f"{tq}-2"]
    assert await within(ids(client, f"{every} AND WorkflowId STARTS_WITH '{tq}-1'")) == \
        [f"{tq}-1"]

    # Memo, search attributes, type and status come back with the listing.
    listed = [w async for w in client.list_workflows(f"{every} AND VisCustomer = 'c-2'")]
    assert len(listed) == 1
    assert listed[0].workflow_type == "WaitForeverWorkflow"
    assert listed[0].task_queue == tq
    assert listed[0].status.name == "RUNNING"
    assert listed[0].close_time is None
    assert await listed[0].memo_value("note") == "memo 1"
    assert listed[0].typed_search_attributes.get(CUSTOMER) == "c-2"
    assert listed[0].typed_search_attributes.get(PRIORITY) == 5
    closed = [w async for w in client.list_workflows(f"{every} AND ExecutionStatus = 'Terminated'")]
    assert closed[0].close_time is not None and closed[0].history_length > 0

    count = await within(client.count_workflows(every))
    assert count.count == 3
    grouped = await within(client.count_workflows(f"{every} GROUP BY ExecutionStatus"))
    assert grouped.count == 3
    assert sorted((g.group_values, g.count) for g in grouped.groups) == \
        [(["Running"], 2), (["Terminated"], 1)]

    for h in handles[1:]:
        await within(h.terminate("cleanup"))


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_bad_queries_are_refused_with_temporals_messages(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)

    async def refused(query: str) -> str:
        with pytest.raises(RPCError) as err:
            await within(ids(client, query))
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT, err.value.message
        return err.value.message

    assert await refused("NoSuchAttribute = 'x'") == \
        "invalid query: invalid search attribute: NoSuchAttribute"
    assert (await refused("WorkflowId = ")).startswith("invalid query: malformed SQL query")
    assert (await refused("HistoryLength = 'many'")).startswith("invalid query:")
    with pytest.raises(RPCError) as err:
        await within(client.count_workflows("WorkflowId = 'x' GROUP BY WorkflowId"))
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.value.message == "invalid query: operation is not supported: " \
        "'GROUP BY' clause is not supported for search attribute WorkflowId"


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_older_typed_listings(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    service = client.workflow_service
    tq = unique("vis-legacy")
    running = await within(client.start_workflow(
        WaitForeverWorkflow.run, id=f"{tq}-open", task_queue=tq))
    ended = await within(client.start_workflow(
        WaitForeverWorkflow.run, id=f"{tq}-closed", task_queue=tq))
    await within(ended.terminate("closed for the listing"))

    async def open_ids(workflow_id: str) -> List[str]:
        answer = await within(service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(
                namespace="default",
                execution_filter=WorkflowExecutionFilter(workflow_id=workflow_id))))
        return [e.execution.workflow_id for e in answer.executions]

    async def closed_ids(**filters) -> List[str]:
        answer = await within(service.list_closed_workflow_executions(
            ListClosedWorkflowExecutionsRequest(namespace="default", **filters)))
        return [e.execution.workflow_id for e in answer.executions]

    await settled(kind, lambda: open_ids(f"{tq}-open"), [f"{tq}-open"])
    await settled(kind, lambda: closed_ids(
        execution_filter=WorkflowExecutionFilter(workflow_id=f"{tq}-closed")), [f"{tq}-closed"])
    assert await open_ids(f"{tq}-closed") == []
    since = Timestamp()
    since.FromSeconds(int(time.time()) - 3600)
    terminated = await closed_ids(
        start_time_filter=StartTimeFilter(earliest_time=since),
        status_filter=StatusFilter(status=WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED))
    assert f"{tq}-closed" in terminated and f"{tq}-open" not in terminated

    with pytest.raises(RPCError) as err:
        await closed_ids(status_filter=StatusFilter(
            status=WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING))
    assert (err.value.status, err.value.message) == (
        RPCStatusCode.INVALID_ARGUMENT, "StatusFilter must be specified and must be not Running.")
    later = Timestamp()
    later.FromSeconds(int(time.time()) + 3600)
    with pytest.raises(RPCError) as err:
        await closed_ids(start_time_filter=StartTimeFilter(earliest_time=later, latest_time=since))
    assert (err.value.status, err.value.message) == (
        RPCStatusCode.INVALID_ARGUMENT,
        "EarliestTime in StartTimeFilter should not be larger than LatestTime.")
    await within(running.terminate("cleanup"))


async def test_search_attribute_keys_match_the_reference(reference_server, server):
    reference = await connect_either("reference", reference_server, server)
    target = await connect_either("target", reference_server, server)
    expected = await within(reference.workflow_service.get_search_attributes(
        GetSearchAttributesRequest()))
    answered = await within(target.workflow_service.get_search_attributes(
        GetSearchAttributesRequest()))
    assert dict(answered.keys) == dict(expected.keys)
    # The operator's listing of the system and predefined ones, too.
    request = ListSearchAttributesRequest(namespace="default")
    expected_system = await within(reference.operator_service.list_search_attributes(request))
    answered_system = await within(target.operator_service.list_search_attributes(request))
    assert dict(answered_system.system_attributes) == dict(expected_system.system_attributes)
