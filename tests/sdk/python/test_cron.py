"""Cron workflows: each run starts at the schedule's next fire (initiator CRON_SCHEDULE), the
previous run's result is carried over, and the run chain matches the reference server."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import ContinueAsNewInitiator
from temporalio.client import Client, WorkflowExecutionStatus

import harness
from helpers import new_worker, unique, within
from sundial_workflows import CronTickWorkflow


async def _cron_runs(srv: harness.ServerProcess) -> list:
    client = await within(Client.connect(srv.address, namespace="default"))
    tq = unique("tq")
    wf_id = unique("cron")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            CronTickWorkflow.run, id=wf_id, task_queue=tq, cron_schedule="@every 2s"))
        await asyncio.sleep(5.5)
        first = (await within(handle.describe())).raw_description.workflow_execution_info.first_run_id
        await within(handle.terminate("enough ticks"))
    runs = []
    run_id = first
    while run_id:
        run = client.get_workflow_handle(wf_id, run_id=run_id)
        events = (await within(run.fetch_history())).events
        started = events[0].workflow_execution_started_event_attributes
        status = (await within(run.describe())).status
        runs.append(([e.event_type for e in events], started.initiator, status))
        run_id = events[-1].workflow_execution_completed_event_attributes.new_execution_run_id
    return runs


async def test_cron_chain_matches_reference(workdir):
    servers = [harness.ServerProcess(kind, workdir, unique(f"cron-{kind}"))
               for kind in ("reference", harness.target())]
    try:
        for srv in servers:
            await srv.astart()
        reference, target = [await _cron_runs(srv) for srv in servers]
        # How many ticks fit in the window depends on timing; every completed tick and the
        # terminated last run must look the same.
        assert len(reference) >= 2 and len(target) >= 2
        assert target[0] == reference[0]
        assert target[-1] == reference[-1]
        assert all(run == reference[0] for run in reference[:-1])
        assert all(run[0] == reference[0][0] for run in target[:-1])
        assert all(initiator == ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE
                   for _, initiator, _ in reference)
        assert reference[0][2] == WorkflowExecutionStatus.COMPLETED
        assert reference[-1][2] == WorkflowExecutionStatus.TERMINATED
    finally:
        for srv in servers:
            srv.stop()
