"""The sticky-queue fallback, on the reference server and on the target: when the worker that
holds a workflow in its cache dies, the next workflow task waits on its sticky queue until the
sticky schedule-to-start timeout, times out, and runs on the normal queue for another worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import (
    connect_either,
    history_event_types,
    new_worker,
    unique,
    wait_until_waiting,
    within,
)
from sundial_workflows import SignalWorkflow

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_dead_sticky_worker_falls_back_to_normal_queue(kind, reference_server, server):
    srv = reference_server if kind == "reference" else server
    client = await connect_either(kind, reference_server, server)
    tq = unique("sticky-tq")
    worker = subprocess.Popen(
        [sys.executable, str(HERE / "sticky_worker.py"), srv.address, tq, "2"],
        cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert (await asyncio.to_thread(worker.stdout.readline)).strip() == "ready"
        handle = await within(client.start_workflow(
            SignalWorkflow.run, id=unique("sticky"), task_queue=tq))
        await wait_until_waiting(handle)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        await within(handle.signal(SignalWorkflow.deliver, "after the crash"))
        async with new_worker(client, tq):
            assert await within(handle.result()) == "after the crash"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    types = await history_event_types(handle)
    assert types == [
        "WorkflowExecutionStarted", "WorkflowTaskScheduled", "WorkflowTaskStarted",
        "WorkflowTaskCompleted", "WorkflowExecutionSignaled", "WorkflowTaskScheduled",
        "WorkflowTaskTimedOut", "WorkflowTaskScheduled", "WorkflowTaskStarted",
        "WorkflowTaskCompleted", "WorkflowExecutionCompleted",
    ], types
    history = await within(handle.fetch_history())
    timed_out = history.events[6].workflow_task_timed_out_event_attributes
    assert timed_out.timeout_type == 2  # SCHEDULE_TO_START
    sticky, normal = (history.events[i].workflow_task_scheduled_event_attributes
                      for i in (5, 7))
    assert sticky.task_queue.kind == 2 and sticky.task_queue.normal_name == tq  # STICKY
    assert normal.task_queue.name == tq and normal.task_queue.kind == 1  # NORMAL
