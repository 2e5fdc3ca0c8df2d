"""Eager workflow start: a client with a worker for the task queue asks for the first workflow
task in the StartWorkflowExecution reply; the server records `eager_execution_accepted` and the
history is the same as on the reference server."""

from __future__ import annotations

from temporalio.client import Client

import harness
from helpers import new_worker, unique, within
from sundial_workflows import HelloActivityWorkflow


async def _eager_run(srv: harness.ServerProcess):
    client = await within(Client.connect(srv.address, namespace="default"))
    tq = unique("tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            HelloActivityWorkflow.run, "eager", id=unique("eager"), task_queue=tq,
            request_eager_start=True))
        result = await within(handle.result())
    events = (await within(handle.fetch_history())).events
    accepted = events[0].workflow_execution_started_event_attributes.eager_execution_accepted
    return result, accepted, [e.event_type for e in events]


async def test_eager_start_matches_reference(workdir):
    servers = [harness.ServerProcess(kind, workdir, unique(f"eager-{kind}"))
               for kind in ("reference", harness.target())]
    try:
        for srv in servers:
            await srv.astart()
        reference, target = [await _eager_run(srv) for srv in servers]
        assert reference[1], "the reference accepted the eager start"
        assert target == reference
    finally:
        for srv in servers:
            srv.stop()
