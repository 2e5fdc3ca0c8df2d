"""GetWorkflowExecutionHistoryReverse, with the same assertions on the reference server and on
the target: newest event first, a token until event 1, and pages of whole batches (the page
size counts the transactions of events, as Temporal reads them, not events)."""

from __future__ import annotations

from typing import List

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client

from helpers import connect_either, new_worker, unique, within
from sundial_workflows import CollectSignalsWorkflow

SERVERS = ["reference", "target"]


async def reverse_pages(client: Client, execution: WorkflowExecution,
                        page_size: int) -> List[List[int]]:
    """The event ids of every page of the reverse history, page by page."""
    pages: List[List[int]] = []
    token = b""
    while True:
        response = await within(client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace="default", execution=execution, maximum_page_size=page_size,
                next_page_token=token)))
        pages.append([e.event_id for e in response.history.events])
        token = response.next_page_token
        if not token:
            return pages
        assert len(pages) < 100, "the reverse history never ends"


@pytest.mark.parametrize("kind", SERVERS)
async def test_reverse_history_pages_newest_first(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("reverse-tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            CollectSignalsWorkflow.run, 3, id=unique("reverse"), task_queue=tq))
        for value in ["a", "b", "c"]:
            await within(handle.signal(CollectSignalsWorkflow.add, value))
        await within(handle.result())
    forward = [e.event_id async for e in handle.fetch_history_events()]
    assert len(forward) > 10

    # The run id may be left out: the current run's history is read.
    for execution in [WorkflowExecution(workflow_id=handle.id, run_id=handle.result_run_id),
                      WorkflowExecution(workflow_id=handle.id)]:
        # A page of size 1 is one batch; a page of size 4 is four batches.
        batches = await reverse_pages(client, execution, page_size=1)
        assert [i for b in batches for i in b] == list(reversed(forward))
        assert batches[-1][-1] == 1 and len(batches) > 4, batches
        pages = await reverse_pages(client, execution, page_size=4)
        assert pages == [[i for b in batches[n:n + 4] for i in b]
                         for n in range(0, len(batches), 4)], (pages, batches)

    # No page size: one page holds this history.
    whole = await reverse_pages(
        client, WorkflowExecution(workflow_id=handle.id), page_size=0)
    assert whole == [list(reversed(forward))]
