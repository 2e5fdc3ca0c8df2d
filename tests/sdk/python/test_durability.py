"""kill -9 the server mid-workflow, restart it on the same database file and port, finish the run.

Each test owns its server process (not the shared fixture), of the kind SUNDIAL_TARGET selects.
"""

from __future__ import annotations

import time

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

import harness
from helpers import new_worker, unique, wait_for_event, wait_until_waiting, within
from sundial_workflows import SignalWorkflow, TimerWorkflow

pytestmark = pytest.mark.durability


async def test_timer_survives_kill9(workdir):
    """A 5-second timer started before kill -9 fires after restart; the worker keeps running
    across the restart and reconnects by itself."""
    srv = harness.ServerProcess(harness.target(), workdir, unique("durable-timer"))
    await srv.astart()
    try:
        client = await within(Client.connect(srv.address, namespace="default"))
        tq = unique("tq")
        async with new_worker(client, tq):
            handle = await within(client.start_workflow(
                TimerWorkflow.run, 5.0, id=unique("durable-timer"), task_queue=tq))
            started = time.monotonic()
            await wait_for_event(handle, "TimerStarted")

            srv.kill9()
            await srv.astart()

            elapsed = await within(handle.result(), 60)
            assert elapsed >= 5.0
            assert time.monotonic() - started >= 4.5
        desc = await within(handle.describe())
        assert desc.status == WorkflowExecutionStatus.COMPLETED
    finally:
        srv.stop()


async def test_signal_after_kill9(workdir):
    """A workflow waiting on a signal before kill -9 gets the signal after restart.
    The worker is stopped before the kill and a fresh client and worker are used afterwards."""
    srv = harness.ServerProcess(harness.target(), workdir, unique("durable-signal"))
    await srv.astart()
    try:
        tq = unique("tq")
        wf_id = unique("durable-signal")
        client = await within(Client.connect(srv.address, namespace="default"))
        async with new_worker(client, tq):
            handle = await within(client.start_workflow(SignalWorkflow.run, id=wf_id, task_queue=tq))
            await wait_until_waiting(handle)
        run_id = handle.result_run_id

        srv.kill9()
        await srv.astart()

        client = await within(Client.connect(srv.address, namespace="default"))
        handle = client.get_workflow_handle(wf_id, run_id=run_id)
        desc = await within(handle.describe())
        assert desc.status == WorkflowExecutionStatus.RUNNING
        async with new_worker(client, tq):
            await within(handle.signal(SignalWorkflow.deliver, "after restart"))
            assert await within(handle.result(), 60) == "after restart"
    finally:
        srv.stop()
