"""Visibility, differentially: the same runs started on the reference server and on the target,
then every query of QUERIES listed on both; the target must list the same runs in the same
order. The queries cover each operator on each attribute type, the system attributes and the
boolean connectives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, List, Optional

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from temporalio.service import RPCError

import harness
from helpers import STEP_TIMEOUT, new_worker, unique, within

NAMESPACE = harness.VISIBILITY_NAMESPACE
from sundial_workflows import SignalWorkflow, WaitForeverWorkflow

KEYWORD = SearchAttributeKey.for_keyword("DiffKeyword")
INT = SearchAttributeKey.for_int("DiffInt")
DOUBLE = SearchAttributeKey.for_float("DiffDouble")
BOOL = SearchAttributeKey.for_bool("DiffBool")
DATETIME = SearchAttributeKey.for_datetime("DiffDatetime")
LIST = SearchAttributeKey.for_keyword_list("DiffList")
TEXT = SearchAttributeKey.for_text("DiffText")

TYPES = {
    "DiffKeyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "DiffInt": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "DiffDouble": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "DiffBool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "DiffDatetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "DiffList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "DiffText": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
}


def day(month: int, d: int) -> datetime:
    return datetime(2024, month, d, tzinfo=timezone.utc)


@dataclass
class Run:
    """One run of the corpus: its attributes (None: not set) and whether it is terminated."""
    keyword: Optional[str]
    number: Optional[int]
    double: Optional[float]
    flag: Optional[bool]
    when: Optional[datetime]
    items: Optional[List[str]]
    text: Optional[str]
    terminated: bool
    # A SignalWorkflow signalled to completion, instead of a WaitForeverWorkflow.
    completes: bool = False


RUNS = [
    Run("alpha", 1, 0.5, True, day(1, 15), ["x"], "hello world", False),
    Run("beta", 2, 1.5, False, day(3, 1), ["x", "y"], "hello there", True),
    Run("gamma", 3, 2.5, True, day(7, 1), ["y"], "quiet night", False),
    Run("alphabet", 4, -1.0, None, None, None, None, True),
    Run(None, None, None, None, None, None, None, False),
    Run("", 0, 0.0, False, day(1, 1), ["z", "x"], "world", True),
    Run("Beta", 10, 10.25, True, day(12, 31), [], "HELLO", False),
    Run("delta", -5, 3.0, False, day(3, 1), ["w"], "good night world", False),
    Run("epsilon", 7, 7.5, True, day(5, 5), ["v"], "signal done", False, completes=True),
    Run("alpha", 2, 0.25, None, None, ["x"], None, False, completes=True),
]

# The part of each query after "TaskQueue = '<queue>' AND"; {wf} is the runs' id prefix.
QUERIES = [
    "DiffKeyword = 'alpha'",
    "DiffKeyword != 'alpha'",
    "DiffKeyword IN ('alpha', 'beta', 'nope')",
    "DiffKeyword NOT IN ('alpha')",
    "DiffKeyword STARTS_WITH 'alpha'",
    "DiffKeyword NOT STARTS_WITH 'alpha'",
    "DiffKeyword BETWEEN 'alpha' AND 'beta'",
    "DiffKeyword NOT BETWEEN 'alpha' AND 'beta'",
    "DiffKeyword < 'beta'",
    "DiffKeyword >= 'beta'",
    "DiffKeyword = ''",
    "DiffKeyword IS NULL",
    "DiffKeyword IS NOT NULL",
    "DiffInt = 3",
    "DiffInt != 3",
    "DiffInt > 2",
    "DiffInt <= 2",
    "DiffInt IN (1, 3, 99)",
    "DiffInt NOT IN (1)",
    "DiffInt BETWEEN 1 AND 3",
    "DiffInt NOT BETWEEN 1 AND 3",
    "DiffInt < 0",
    "DiffInt IS NULL",
    "DiffDouble > 1.5",
    "DiffDouble = 2.5",
    "DiffDouble < 0",
    "DiffDouble BETWEEN 1 AND 2.5",
    "DiffDouble >= 3",
    "DiffBool = true",
    "DiffBool = false",
    "DiffBool != true",
    "DiffBool IS NULL",
    "DiffDatetime > '2024-01-01T00:00:00Z'",
    "DiffDatetime < '2024-06-01T00:00:00Z'",
    "DiffDatetime = '2024-03-01T00:00:00Z'",
    "DiffDatetime BETWEEN '2024-01-01T00:00:00Z' AND '2024-03-01T00:00:00Z'",
    "DiffDatetime >= '2024-03-01T01:00:00+01:00'",
    "DiffDatetime IS NOT NULL",
    "DiffList = 'x'",
    "DiffList != 'x'",
    "DiffList IN ('x', 'w')",
    "DiffList NOT IN ('y')",
    "DiffList IS NULL",
    "DiffText = 'hello'",
    "DiffText = 'world'",
    "DiffText != 'hello'",
    "DiffText = 'night quiet'",
    "DiffText IS NULL",
    "ExecutionStatus = 'Running'",
    "ExecutionStatus = 'Terminated'",
    "ExecutionStatus != 'Running'",
    "ExecutionStatus IN ('Running', 'Completed')",
    "ExecutionStatus = 5",
    "WorkflowId = '{wf}-3'",
    "WorkflowId STARTS_WITH '{wf}-1'",
    "WorkflowId IN ('{wf}-0', '{wf}-7')",
    "RunId IS NOT NULL",
    "WorkflowType = 'WaitForeverWorkflow'",
    "WorkflowType = 'SignalWorkflow'",
    "ExecutionStatus = 'Completed'",
    "ExecutionStatus IN ('Completed', 'Terminated')",
    "ExecutionStatus = 'Completed' AND HistoryLength > 5",
    "WorkflowType = 'SignalWorkflow' OR DiffInt > 5",
    "WorkflowType != 'WaitForeverWorkflow'",
    "CloseTime IS NULL",
    "CloseTime IS NOT NULL",
    "StartTime > '2000-01-01T00:00:00Z'",
    "ExecutionTime < '2000-01-01T00:00:00Z'",
    "ParentWorkflowId IS NULL",
    "HistoryLength > 2",
    "HistoryLength IS NULL",
    "HistorySizeBytes > 0",
    "StateTransitionCount > 0",
    "ExecutionDuration > 0",
    "ExecutionDuration IS NULL",
    "RootWorkflowId STARTS_WITH '{wf}'",
    "DiffInt > 1 AND DiffBool = true",
    "DiffInt > 3 OR DiffKeyword = 'alpha'",
    "NOT (DiffInt > 2)",
    "NOT (DiffList = 'x')",
    "(DiffKeyword = 'alpha' OR DiffKeyword = 'gamma') AND ExecutionStatus = 'Running'",
    "DiffKeyword = 'alpha' OR (DiffInt < 3 AND NOT DiffBool = true)",
    "`DiffKeyword` = 'beta'",
    "DiffKeyword = \"gamma\"",
    "TemporalChangeVersion IS NULL",
    "BuildIds IS NULL",
]


# Where the reference server is wrong: its SQLite visibility compares a custom Datetime as text,
# the column spelled '2024-03-01 00:00:00.000+00:00' and the query's value
# '2024-03-01 00:00:00+00:00', so a time equal to a whole-second value is greater than it.
# Sundial compares times as times, as Temporal's PostgreSQL and MySQL visibility do; for these
# queries the target must list the runs whose attribute the query means, in listing order.
DATETIME_AS_TEXT = {
    "DiffDatetime > '2024-01-01T00:00:00Z'": lambda r: r.when is not None and r.when > day(1, 1),
    "DiffDatetime = '2024-03-01T00:00:00Z'": lambda r: r.when == day(3, 1),
    "DiffDatetime BETWEEN '2024-01-01T00:00:00Z' AND '2024-03-01T00:00:00Z'":
        lambda r: r.when is not None and day(1, 1) <= r.when <= day(3, 1),
}


async def register(client: Client) -> None:
    await within(client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=NAMESPACE, search_attributes=TYPES)))


async def connect(kind: str, reference_server, server) -> Client:
    """A client of the suite's own namespace on the reference server or the target."""
    srv = reference_server if kind == "reference" else server
    return await within(Client.connect(srv.address, namespace=NAMESPACE))


def attributes(run: Run) -> TypedSearchAttributes:
    pairs = []
    for key, value in [(KEYWORD, run.keyword), (INT, run.number), (DOUBLE, run.double),
                       (BOOL, run.flag), (DATETIME, run.when), (LIST, run.items),
                       (TEXT, run.text)]:
        if value is not None:
            pairs.append(SearchAttributePair(key, value))
    return TypedSearchAttributes(pairs)


async def start_corpus(client: Client, tq: str) -> None:
    async with new_worker(client, tq):
        for i, run in enumerate(RUNS):
            if run.completes:
                handle = await within(client.start_workflow(
                    SignalWorkflow.run, id=f"{tq}-{i}", task_queue=tq,
                    search_attributes=attributes(run)))
                await within(handle.signal(SignalWorkflow.deliver, "done"))
                assert await within(handle.result()) == "done"
                continue
            handle = await within(client.start_workflow(
                WaitForeverWorkflow.run, id=f"{tq}-{i}", task_queue=tq,
                search_attributes=attributes(run)))
            if run.terminated:
                await within(handle.terminate("corpus"))


async def listed(client: Client, query: str) -> List[str]:
    return [w.id async for w in client.list_workflows(query)]


async def settle(client: Client, tq: str) -> None:
    """Waits until the reference server lists the whole corpus with its final statuses."""
    terminated = sum(run.terminated or run.completes for run in RUNS)
    query = f"TaskQueue = '{tq}' AND ExecutionStatus != 'Running'"
    deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT
    while True:
        total = (await within(client.count_workflows(f"TaskQueue = '{tq}'"))).count
        closed = (await within(client.count_workflows(query))).count
        if (total, closed) == (len(RUNS), terminated):
            return
        assert asyncio.get_running_loop().time() < deadline, (total, closed)
        await asyncio.sleep(0.1)


async def test_every_query_lists_what_the_reference_lists(reference_server, server):
    reference = await connect("reference", reference_server, server)
    target = await connect("target", reference_server, server)
    tq = unique("vis-diff")
    for client in (reference, target):
        await register(client)
        await start_corpus(client, tq)
    await settle(reference, tq)

    every = [wf[len(tq) + 1:] for wf in await listed(reference, f"TaskQueue = '{tq}'")]
    differences: Dict[str, str] = {}
    for query in QUERIES:
        full = f"TaskQueue = '{tq}' AND ({query.format(wf=tq)})"
        expected = [wf[len(tq) + 1:] for wf in await listed(reference, full)]
        if query in DATETIME_AS_TEXT:
            meant = DATETIME_AS_TEXT[query]
            expected = [i for i in every if meant(RUNS[int(i)])]
        answered = [wf[len(tq) + 1:] for wf in await listed(target, full)]
        if answered != expected:
            differences[query] = f"expected {expected}, target {answered}"
        answered_count = (await within(target.count_workflows(full))).count
        if answered_count != len(expected):
            differences[query + " (count)"] = f"expected {len(expected)}, target {answered_count}"
    assert not differences, "\n".join(f"{q}: {d}" for q, d in differences.items())
    assert len(QUERIES) >= 60


# Queries both servers refuse; the target must refuse each with the reference's code and message.
INVALID = [
    "NoSuchAttribute = 'x'",
    "WorkflowId = ",
    "WorkflowId == 'a'",
    "(WorkflowId = 'a'",
    "WorkflowId = 'a' AND",
    "WorkflowId IN ()",
    "lower(WorkflowId) = 'a'",
    "DiffInt = 'abc'",
    "DiffDouble = 'x'",
    "DiffBool = 'maybe'",
    "DiffDatetime = 'not a time'",
    "DiffInt STARTS_WITH '1'",
    "DiffList BETWEEN 'a' AND 'b'",
    "DiffText > 'a'",
    "DiffList > 'a'",
    "ExecutionStatus = 'Sleeping'",
    "ExecutionDuration = 'forever'",
    "WorkflowId = 'a' ORDER BY StartTime",
    "WorkflowId = 'a' LIMIT 10",
    "WorkflowId = 'a' GROUP BY WorkflowType",
]


async def test_every_bad_query_is_refused_as_the_reference_refuses_it(reference_server, server):
    reference = await connect("reference", reference_server, server)
    target = await connect("target", reference_server, server)
    for client in (reference, target):
        await register(client)

    async def refusal(client: Client, query: str):
        try:
            await within(listed(client, query))
        except RPCError as e:
            return (e.status, e.message)
        return None

    differences = {}
    for query in INVALID:
        expected = await refusal(reference, query)
        assert expected is not None, f"the reference server accepts {query!r}"
        answered = await refusal(target, query)
        if answered != expected:
            differences[query] = f"reference {expected}, target {answered}"
    assert not differences, "\n".join(f"{q}: {d}" for q, d in differences.items())
