"""Differential tests: the same workflows on the reference server and on the server under test
must produce the same sequence of history event types (and the same outcome); for the scenarios
in ATTRIBUTE_SCENARIOS also the same event attributes, once times and random ids are normalised
(history_attributes.py). Each scenario runs once per session; both tests share its result.

With SUNDIAL_TARGET=sundial this compares reference vs Sundial; with SUNDIAL_TARGET=reference it
compares two separate reference processes (which must trivially agree). These tests never skip:
a missing binary makes the fixtures, and so the tests, fail.
"""

from __future__ import annotations

import asyncio
import difflib
import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Awaitable, Callable, Dict, List, Tuple

import pytest
from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy

import harness
import sundial_flags
from history_attributes import history_differences, normalise_chain, render_differences
from known_divergences import ALL, KNOWN_DIVERGENCES, KnownDivergences, classify, xfail_reason
from helpers import (
    event_type_name,
    new_worker,
    unique,
    wait_for_event,
    wait_until_waiting,
    within,
)
from update_workflows import BusyUpdateWorkflow, CounterUpdateWorkflow, UpdateWithStartWorkflow
from sundial_workflows import (
    AbandonChildWorkflow,
    ActivityCancelWorkflow,
    ActivityFailureWorkflow,
    ActivityTimeoutWorkflow,
    AwaitActivityWorkflow,
    BufferedSignalsWorkflow,
    CancelOtherWorkflow,
    ChildOutcomesWorkflow,
    CollectSignalsWorkflow,
    ContinueAsNewWorkflow,
    CounterInput,
    ExternalWorkflow,
    FailingWorkflow,
    FailTaskUntilAllowedWorkflow,
    HeartbeatTimeoutWorkflow,
    HelloActivityWorkflow,
    LocalActivityWorkflow,
    ManySignalsWorkflow,
    ParallelWorkflow,
    ParentWorkflow,
    PatchAndMemoWorkflow,
    ReorderOnFlushWorkflow,
    RetriedWorkflow,
    RetryWorkflow,
    SearchAttributesWorkflow,
    SignalDuringActivityWorkflow,
    SignalWorkflow,
    TimerCancelWorkflow,
    TimerFiresDuringTaskWorkflow,
    TimerWorkflow,
    UpsertUndefinedWorkflow,
    WaitForeverWorkflow,
)

pytestmark = pytest.mark.differential

# A scenario drives one workflow to completion on one server and returns
# (outcome, workflow id, first run id).
Scenario = Callable[[Client, str], Awaitable[Tuple[str, str, str]]]
SCENARIOS: Dict[str, Scenario] = {}
# Scenarios whose exact interleaving of workflow-task events is racy on the reference server
# itself: they are compared on the history with WorkflowTaskScheduled/Started/Completed removed.
WITHOUT_TASK_EVENTS = set()

WFT_EVENTS = {"WorkflowTaskScheduled", "WorkflowTaskStarted", "WorkflowTaskCompleted"}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def scenario_without_task_events(fn: Scenario) -> Scenario:
    WITHOUT_TASK_EVENTS.add(fn.__name__)
    return scenario(fn)


async def outcome_of(handle) -> str:
    try:
        return f"result {await within(handle.result())!r}"
    except WorkflowFailureError as err:
        return f"failure {type(err.cause).__name__}"


def no_worker_queue() -> str:
    """A task queue nobody polls."""
    return unique("no-worker-tq")


@scenario
async def hello_activity_timer(client: Client, tq: str):
    h = await within(client.start_workflow(
        HelloActivityWorkflow.run, "diff", id=unique("hello"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def activity_retries(client: Client, tq: str):
    h = await within(client.start_workflow(RetryWorkflow.run, 3, id=unique("retry"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def heartbeat_timeout(client: Client, tq: str):
    h = await within(client.start_workflow(
        HeartbeatTimeoutWorkflow.run, id=unique("heartbeat"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def timer(client: Client, tq: str):
    h = await within(client.start_workflow(TimerWorkflow.run, 1.0, id=unique("timer"), task_queue=tq))
    elapsed = await within(h.result())  # workflow-clock seconds: compare only the bound
    return f"elapsed >= 1s: {elapsed >= 1.0}", h.id, h.first_execution_run_id


@scenario
async def signal(client: Client, tq: str):
    h = await within(client.start_workflow(SignalWorkflow.run, id=unique("signal"), task_queue=tq))
    await wait_until_waiting(h)
    await within(h.signal(SignalWorkflow.deliver, "sig"))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def query_then_signal(client: Client, tq: str):
    h = await within(client.start_workflow(SignalWorkflow.run, id=unique("query"), task_queue=tq))
    await wait_until_waiting(h)
    state = await within(h.query(SignalWorkflow.state))
    await within(h.signal(SignalWorkflow.deliver, "q"))
    return f"query {state!r}, {await outcome_of(h)}", h.id, h.first_execution_run_id


@scenario
async def cancel(client: Client, tq: str):
    h = await within(client.start_workflow(WaitForeverWorkflow.run, id=unique("cancel"), task_queue=tq))
    await wait_until_waiting(h)
    await within(h.cancel())
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def terminate(client: Client, tq: str):
    h = await within(client.start_workflow(
        WaitForeverWorkflow.run, id=unique("terminate"), task_queue=tq))
    await wait_until_waiting(h)
    await within(h.terminate(reason="diff"))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def continue_as_new(client: Client, tq: str):
    h = await within(client.start_workflow(
        ContinueAsNewWorkflow.run, CounterInput(count=0, target=3), id=unique("can"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def signal_with_start(client: Client, tq: str):
    h = await within(client.start_workflow(
        SignalWorkflow.run, id=unique("sws"), task_queue=tq,
        start_signal="deliver", start_signal_args=["sws"]))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def signal_with_start_running(client: Client, tq: str):
    wf_id = unique("sws-running")
    h = await within(client.start_workflow(SignalWorkflow.run, id=wf_id, task_queue=tq))
    await wait_until_waiting(h)
    await within(client.start_workflow(
        SignalWorkflow.run, id=wf_id, task_queue=tq,
        start_signal="deliver", start_signal_args=["sws2"]))
    return await outcome_of(h), h.id, h.first_execution_run_id


# --- trickier server rules ------------------------------------------------------------------


@scenario
async def signal_during_activity(client: Client, tq: str):
    """Signal while an activity runs: ActivityTaskStarted is written only when it completes."""
    h = await within(client.start_workflow(
        SignalDuringActivityWorkflow.run, id=unique("sig-during-act"), task_queue=tq))
    await wait_for_event(h, "ActivityTaskScheduled")
    await within(h.signal(SignalDuringActivityWorkflow.deliver, "mid-activity"))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def signal_before_first_task(client: Client, tq: str):
    """Signal while the first workflow task is scheduled but not started (no worker yet)."""
    idle_tq = unique("idle-tq")
    h = await within(client.start_workflow(
        SignalWorkflow.run, id=unique("sig-before-wft"), task_queue=idle_tq))
    await wait_for_event(h, "WorkflowTaskScheduled")
    await within(h.signal(SignalWorkflow.deliver, "early"))
    async with new_worker(client, idle_tq):
        outcome = await outcome_of(h)
    return outcome, h.id, h.first_execution_run_id


@scenario
async def workflow_failure(client: Client, tq: str):
    h = await within(client.start_workflow(FailingWorkflow.run, id=unique("wf-fail"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


async def _activity_failure(client: Client, tq: str, kind: str):
    h = await within(client.start_workflow(
        ActivityFailureWorkflow.run, kind, id=unique(f"act-fail-{kind}"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def activity_non_retryable_error(client: Client, tq: str):
    return await _activity_failure(client, tq, "NonRetryable")


@scenario
async def activity_non_retryable_error_type(client: Client, tq: str):
    return await _activity_failure(client, tq, "Fatal")


@scenario
async def activity_retries_exhausted(client: Client, tq: str):
    return await _activity_failure(client, tq, "Exhaust")


async def _activity_cancel(client: Client, tq: str, mode: str):
    h = await within(client.start_workflow(
        ActivityCancelWorkflow.run, args=[mode, no_worker_queue()], id=unique(f"act-cancel-{mode}"),
        task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def activity_cancel_started_wait(client: Client, tq: str):
    return await _activity_cancel(client, tq, "started-wait")


@scenario
async def activity_cancel_started_try(client: Client, tq: str):
    return await _activity_cancel(client, tq, "started-try")


@scenario
async def activity_cancel_unstarted_wait(client: Client, tq: str):
    return await _activity_cancel(client, tq, "unstarted-wait")


@scenario
async def activity_cancel_unstarted_try(client: Client, tq: str):
    return await _activity_cancel(client, tq, "unstarted-try")


async def _cancel_workflow_with_activity(client: Client, tq: str, wait: bool):
    h = await within(client.start_workflow(
        AwaitActivityWorkflow.run, wait, id=unique("cancel-wf-act"), task_queue=tq))
    await wait_for_event(h, "ActivityTaskScheduled")
    await asyncio.sleep(0.5)  # let the activity start (and heartbeat) first
    await within(h.cancel())
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def cancel_workflow_running_activity_try(client: Client, tq: str):
    return await _cancel_workflow_with_activity(client, tq, False)


@scenario
async def cancel_workflow_running_activity_wait(client: Client, tq: str):
    return await _cancel_workflow_with_activity(client, tq, True)


@scenario
async def activity_schedule_to_start_timeout(client: Client, tq: str):
    h = await within(client.start_workflow(
        ActivityTimeoutWorkflow.run, args=["schedule-to-start", no_worker_queue()],
        id=unique("act-s2s"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def activity_start_to_close_timeout(client: Client, tq: str):
    h = await within(client.start_workflow(
        ActivityTimeoutWorkflow.run, args=["start-to-close", ""],
        id=unique("act-s2c"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def timer_cancelled_by_signal(client: Client, tq: str):
    h = await within(client.start_workflow(
        TimerCancelWorkflow.run, id=unique("timer-cancel"), task_queue=tq))
    await wait_for_event(h, "TimerStarted")
    await within(h.signal(TimerCancelWorkflow.deliver, "early"))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def timer_fires_during_task_then_cancelled(client: Client, tq: str):
    h = await within(client.start_workflow(
        TimerFiresDuringTaskWorkflow.run, id=unique("timer-buffered"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def local_activity(client: Client, tq: str):
    h = await within(client.start_workflow(
        LocalActivityWorkflow.run, "local", id=unique("local-act"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def patch_and_memo(client: Client, tq: str):
    h = await within(client.start_workflow(
        PatchAndMemoWorkflow.run, id=unique("patch-memo"), task_queue=tq, memo={"initial": 1}))
    outcome = await outcome_of(h)
    memo = await (await within(h.describe())).memo()
    return f"{outcome}, memo {sorted(memo.items())!r}", h.id, h.first_execution_run_id


@scenario
async def run_timeout(client: Client, tq: str):
    """The worker must complete the first workflow task before the run times out: the timeout
    leaves it seconds to do so on a loaded machine (2 s was once too short in CI, where the
    suites run side by side)."""
    h = await within(client.start_workflow(
        WaitForeverWorkflow.run, id=unique("run-timeout"), task_queue=tq,
        run_timeout=timedelta(seconds=8)))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def workflow_task_failure_then_success(client: Client, tq: str):
    """First attempt fails the task; attempt 2 (transient) fails too, unrecorded; after the flag is
    flipped, the retry after attempt 2's 2 s task timeout passes."""
    h = await within(client.start_workflow(
        FailTaskUntilAllowedWorkflow.run, id=unique("wft-fail"), task_queue=tq,
        task_timeout=timedelta(seconds=2)))
    await wait_for_event(h, "WorkflowTaskFailed")
    await asyncio.sleep(1.0)
    sundial_flags.allow(h.id)
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def parallel_activities_and_timer(client: Client, tq: str):
    h = await within(client.start_workflow(ParallelWorkflow.run, id=unique("parallel"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


async def _buffered_signals(client: Client, tq: str, mode: str, count: int):
    h = await within(client.start_workflow(
        BufferedSignalsWorkflow.run, args=[mode, count], id=unique(f"buffered-{mode}-{count}"),
        task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def buffered_signal_then_wait(client: Client, tq: str):
    """A signal buffered during a task forces a new task."""
    return await _buffered_signals(client, tq, "wait", 1)


@scenario
async def buffered_signals_20(client: Client, tq: str):
    return await _buffered_signals(client, tq, "wait", 20)


@scenario
async def buffered_signal_vetoes_complete(client: Client, tq: str):
    """Complete while a signal is buffered: UNHANDLED_COMMAND."""
    return await _buffered_signals(client, tq, "complete", 1)


@scenario
async def buffered_signal_vetoes_continue_as_new(client: Client, tq: str):
    return await _buffered_signals(client, tq, "continue", 1)


@scenario
async def buffered_signals_100(client: Client, tq: str):
    """100 buffered signals: at history.maximumBufferedEventsBatch (100) but not over it."""
    return await _buffered_signals(client, tq, "wait", 100)


@scenario
async def buffered_events_limit_exceeded(client: Client, tq: str):
    """The 101st buffered signal exceeds history.maximumBufferedEventsBatch: the in-flight task
    is force-failed, the buffer flushed, and the local activity's completion is rejected.
    (More signals after the 101st would race with the retried task, so exactly 101.)"""
    return await _buffered_signals(client, tq, "wait", 101)


@scenario
async def buffered_activity_completion_reordered(client: Client, tq: str):
    h = await within(client.start_workflow(
        ReorderOnFlushWorkflow.run, id=unique("reorder"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario_without_task_events
async def many_client_signals(client: Client, tq: str):
    """20 signals sent back to back by the client; how they batch into workflow tasks is racy."""
    h = await within(client.start_workflow(
        ManySignalsWorkflow.run, 20, id=unique("many-signals"), task_queue=tq))
    await wait_until_waiting(h)
    for i in range(20):
        await within(h.signal(ManySignalsWorkflow.deliver, f"s{i}"))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def child_workflow(client: Client, tq: str):
    h = await within(client.start_workflow(ParentWorkflow.run, "child", id=unique("parent"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def workflow_retry(client: Client, tq: str):
    h = await within(client.start_workflow(
        RetriedWorkflow.run, id=unique("wf-retry"), task_queue=tq,
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)))
    return await outcome_of(h), h.id, h.first_execution_run_id


# --- workflow updates -----------------------------------------------------------------------


async def _counter(client: Client, tq: str, prefix: str):
    h = await within(client.start_workflow(CounterUpdateWorkflow.run, id=unique(prefix), task_queue=tq))
    await wait_until_waiting(h)
    return h


@scenario
async def update_accepted_and_completed(client: Client, tq: str):
    """Two updates on an idle workflow: each rides a speculative task that is kept."""
    h = await _counter(client, tq, "update")
    first = await within(h.execute_update(CounterUpdateWorkflow.add, 5))
    second = await within(h.execute_update(CounterUpdateWorkflow.add, 3))
    await within(h.signal(CounterUpdateWorkflow.finish))
    return f"updates {first}, {second}; {await outcome_of(h)}", h.id, h.first_execution_run_id


@scenario
async def update_rejected_by_validator(client: Client, tq: str):
    """A rejected update leaves no events (its speculative task is discarded)."""
    from temporalio.client import WorkflowUpdateFailedError

    h = await _counter(client, tq, "update-rejected")
    try:
        await within(h.execute_update(CounterUpdateWorkflow.add, -1))
        rejected = "accepted?!"
    except WorkflowUpdateFailedError as err:
        rejected = f"rejected {type(err.cause).__name__}"
    accepted = await within(h.execute_update(CounterUpdateWorkflow.add, 2))
    await within(h.signal(CounterUpdateWorkflow.finish))
    return f"{rejected}, then {accepted}; {await outcome_of(h)}", h.id, h.first_execution_run_id


@scenario
async def update_runs_activity(client: Client, tq: str):
    """An update handler that runs an activity before it returns."""
    h = await _counter(client, tq, "update-activity")
    result = await within(h.execute_update(CounterUpdateWorkflow.add_after_activity, 1))
    await within(h.signal(CounterUpdateWorkflow.finish))
    return f"update {result!r}; {await outcome_of(h)}", h.id, h.first_execution_run_id


@scenario
async def update_wait_for_accepted(client: Client, tq: str):
    """Wait for ACCEPTED, then for the result of an update that sleeps."""
    from temporalio.client import WorkflowUpdateStage

    h = await _counter(client, tq, "update-accepted")
    handle = await within(h.start_update(
        CounterUpdateWorkflow.add_after_timer, 4, wait_for_stage=WorkflowUpdateStage.ACCEPTED))
    result = await within(handle.result())
    await within(h.signal(CounterUpdateWorkflow.finish))
    return f"update {result}; {await outcome_of(h)}", h.id, h.first_execution_run_id


@scenario
async def update_during_running_task(client: Client, tq: str):
    """An update that arrives while a workflow task runs (a local activity): it rides the
    speculative task the worker gets back from that task's completion."""
    h = await within(client.start_workflow(
        BusyUpdateWorkflow.run, id=unique("update-busy"), task_queue=tq))
    await wait_for_event(h, "WorkflowTaskStarted")
    noted = await within(h.execute_update(BusyUpdateWorkflow.note, "during"))
    await within(h.signal(BusyUpdateWorkflow.finish))
    return f"update {noted}; {await outcome_of(h)}", h.id, h.first_execution_run_id


@scenario
async def update_with_start(client: Client, tq: str):
    """Update-with-start creates the workflow (its first task carries the update), then a
    second one with USE_EXISTING updates the running workflow."""
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    wf_id = unique("uws")

    def start_op(policy):
        return WithStartWorkflowOperation(
            UpdateWithStartWorkflow.run, "items", id=wf_id, task_queue=tq,
            id_conflict_policy=policy)

    first_op = start_op(WorkflowIDConflictPolicy.FAIL)
    first = await within(client.execute_update_with_start_workflow(
        UpdateWithStartWorkflow.put, "a", start_workflow_operation=first_op))
    h = await within(first_op.workflow_handle())
    second = await within(client.execute_update_with_start_workflow(
        UpdateWithStartWorkflow.put, "b",
        start_workflow_operation=start_op(WorkflowIDConflictPolicy.USE_EXISTING)))
    await within(h.signal(UpdateWithStartWorkflow.finish))
    return f"updates {first}, {second}; {await outcome_of(h)}", h.id, h.first_execution_run_id


async def _reset_to_first_task(client: Client, tq: str, reapply_signals: bool):
    """A CollectSignalsWorkflow(2) that ran its activity and got `x` is reset to its first
    completed workflow task; the compared history is the new run's (the base run's prefix, the
    RESET_WORKFLOW failure, the re-applied signal unless excluded, and the run to its end)."""
    import uuid

    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import ResetReapplyExcludeType
    from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

    h = await within(client.start_workflow(
        CollectSignalsWorkflow.run, 2, id=unique("reset"), task_queue=tq))
    await wait_for_event(h, "WorkflowTaskCompleted", 2)
    await within(h.signal(CollectSignalsWorkflow.add, "x"))
    await wait_for_event(h, "WorkflowTaskCompleted", 3)
    exclude = [] if reapply_signals else [ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL]
    response = await within(client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace="default",
            workflow_execution=WorkflowExecution(workflow_id=h.id, run_id=h.result_run_id),
            reason="differential reset", workflow_task_finish_event_id=4,
            request_id=str(uuid.uuid4()), reset_reapply_exclude_types=exclude)))
    new = client.get_workflow_handle(h.id, run_id=response.run_id)
    await wait_for_event(new, "WorkflowTaskCompleted", 2)
    values = ["z"] if reapply_signals else ["y", "z"]
    for i, value in enumerate(values):
        # One at a time, each after the last one's task: no racy buffering.
        await within(new.signal(CollectSignalsWorkflow.add, value))
        if i + 1 < len(values):
            await wait_for_event(new, "WorkflowTaskCompleted", 3 + i)
    return await outcome_of(new), h.id, response.run_id


@scenario
async def reset_reapplying_signals(client: Client, tq: str):
    return await _reset_to_first_task(client, tq, reapply_signals=True)


@scenario
async def reset_excluding_signals(client: Client, tq: str):
    return await _reset_to_first_task(client, tq, reapply_signals=False)


@scenario
async def reset_reapplying_updates(client: Client, tq: str):
    """Two updates after the reset point are admitted again in the new run (origin REAPPLY)
    and run again by the worker."""
    import uuid

    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

    h = await within(client.start_workflow(
        CounterUpdateWorkflow.run, id=unique("reset-upd"), task_queue=tq))
    await wait_until_waiting(h)
    first = await within(h.execute_update(CounterUpdateWorkflow.add, 5))
    second = await within(h.execute_update(CounterUpdateWorkflow.add, 2))
    response = await within(client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace="default",
            workflow_execution=WorkflowExecution(workflow_id=h.id, run_id=h.result_run_id),
            reason="differential reset", workflow_task_finish_event_id=4,
            request_id=str(uuid.uuid4()))))
    new = client.get_workflow_handle(h.id, run_id=response.run_id)
    await wait_for_event(new, "WorkflowExecutionUpdateCompleted", 2)
    await within(new.signal(CounterUpdateWorkflow.finish))
    return f"updates {first}, {second}; {await outcome_of(new)}", h.id, response.run_id


@scenario
async def reset_after_child_started(client: Client, tq: str):
    """Reset to the task after the child started: the child's completion, after the point, is
    written again in the new run, which finishes with its result."""
    import uuid

    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

    h = await within(client.start_workflow(
        ParentWorkflow.run, "child", id=unique("reset-parent"), task_queue=tq))
    first = await outcome_of(h)
    history = await within(h.fetch_history())
    completed = [e.event_id for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    response = await within(client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace="default",
            workflow_execution=WorkflowExecution(workflow_id=h.id, run_id=h.result_run_id),
            reason="differential reset", workflow_task_finish_event_id=completed[1],
            request_id=str(uuid.uuid4()))))
    new = client.get_workflow_handle(h.id, run_id=response.run_id)
    return f"{first}; after reset {await outcome_of(new)}", h.id, response.run_id


async def _child_outcome(client: Client, tq: str, mode: str):
    child_id = unique("child")
    h = await within(client.start_workflow(
        ChildOutcomesWorkflow.run, args=[mode, child_id], id=unique(f"parent-{mode}"),
        task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def child_fails(client: Client, tq: str):
    return await _child_outcome(client, tq, "fail")


@scenario
async def child_cancelled_by_parent(client: Client, tq: str):
    return await _child_outcome(client, tq, "cancel")


@scenario
async def child_id_already_running(client: Client, tq: str):
    """The child's id belongs to a running workflow: StartChildWorkflowExecutionFailed."""
    busy = await within(client.start_workflow(
        WaitForeverWorkflow.run, id=unique("busy"), task_queue=tq))
    await wait_until_waiting(busy)
    h = await within(client.start_workflow(
        ChildOutcomesWorkflow.run, args=["existing", busy.id], id=unique("parent-existing"),
        task_queue=tq))
    outcome = await outcome_of(h)
    await within(busy.terminate("done"))
    return outcome, h.id, h.first_execution_run_id


async def _closed_status(handle, seconds: float = 15.0) -> str:
    for _ in range(int(seconds * 20)):
        status = (await within(handle.describe())).status
        if status.name != "RUNNING":
            return status.name
        await asyncio.sleep(0.05)
    return "RUNNING"


async def _parent_close(client: Client, tq: str, policy: str):
    """The parent completes with a waiting child under `policy`; the compared history is the
    child's (cancel request, termination, or nothing)."""
    child_id = unique("orphan")
    h = await within(client.start_workflow(
        AbandonChildWorkflow.run, args=[policy, child_id], id=unique("parent-close"),
        task_queue=tq))
    child = client.get_workflow_handle(child_id)
    # The parent finishes only once the child is idle (no task of its own in flight).
    await wait_for_event(h, "ChildWorkflowExecutionStarted")
    await wait_until_waiting(child)
    await within(h.signal(AbandonChildWorkflow.finish))
    outcome = await outcome_of(h)
    if policy == "ABANDON":
        await asyncio.sleep(0.5)
        status = (await within(child.describe())).status.name
        await within(child.terminate("abandoned child stopped by the test"))
    else:
        status = await _closed_status(child)
    run_id = (await within(child.describe())).run_id
    return f"{outcome}; child {status}", child_id, run_id


@scenario
async def parent_close_terminates_child(client: Client, tq: str):
    return await _parent_close(client, tq, "TERMINATE")


@scenario
async def parent_close_cancels_child(client: Client, tq: str):
    return await _parent_close(client, tq, "REQUEST_CANCEL")


@scenario
async def parent_close_abandons_child(client: Client, tq: str):
    return await _parent_close(client, tq, "ABANDON")


@scenario
async def external_signal_and_missing_targets(client: Client, tq: str):
    """SignalExternalWorkflowExecution to a waiting workflow, then signal and cancel requests
    to a workflow that does not exist (their Failed events)."""
    target = await within(client.start_workflow(
        SignalWorkflow.run, id=unique("target"), task_queue=tq))
    await wait_until_waiting(target)
    h = await within(client.start_workflow(
        ExternalWorkflow.run, target.id, id=unique("external"), task_queue=tq))
    outcome = await outcome_of(h)
    return f"{outcome}; target {await outcome_of(target)}", h.id, h.first_execution_run_id


@scenario
async def external_cancel_request(client: Client, tq: str):
    """RequestCancelExternalWorkflowExecution: compared on the target's history (its
    WorkflowExecutionCancelRequested names the requester)."""
    target = await within(client.start_workflow(
        WaitForeverWorkflow.run, id=unique("cancel-target"), task_queue=tq))
    await wait_until_waiting(target)
    h = await within(client.start_workflow(
        CancelOtherWorkflow.run, target.id, id=unique("canceller"), task_queue=tq))
    outcome = await outcome_of(h)
    status = await _closed_status(target)
    return f"{outcome}; target {status}", target.id, target.first_execution_run_id


async def register_search_attributes(client: Client) -> None:
    """CustomKeywordField and CustomIntField, registered in `default` (again is a no-op)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    await within(client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace="default",
        search_attributes={
            "CustomKeywordField": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
            "CustomIntField": IndexedValueType.INDEXED_VALUE_TYPE_INT,
        })))


@scenario
async def upsert_search_attributes(client: Client, tq: str):
    await register_search_attributes(client)
    h = await within(client.start_workflow(
        SearchAttributesWorkflow.run, id=unique("search-attrs"), task_queue=tq))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def upsert_undefined_search_attribute(client: Client, tq: str):
    """The upsert names an attribute nobody registered: WorkflowTaskFailed
    (BAD_SEARCH_ATTRIBUTES), retried unrecorded until the workflow is terminated."""
    h = await within(client.start_workflow(
        UpsertUndefinedWorkflow.run, id=unique("undefined-sa"), task_queue=tq))
    await wait_for_event(h, "WorkflowTaskFailed")
    await within(h.terminate(reason="stop the failing task"))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def start_delay(client: Client, tq: str):
    h = await within(client.start_workflow(
        HelloActivityWorkflow.run, "later", id=unique("delayed"), task_queue=tq,
        start_delay=timedelta(seconds=1)))
    return await outcome_of(h), h.id, h.first_execution_run_id


@scenario
async def execution_timeout(client: Client, tq: str):
    """On a queue no worker polls, so the timeout, not the load on the machine, decides what
    the history holds."""
    h = await within(client.start_workflow(
        WaitForeverWorkflow.run, id=unique("exec-timeout"), task_queue=no_worker_queue(),
        execution_timeout=timedelta(seconds=1)))
    return await outcome_of(h), h.id, h.first_execution_run_id


def describe_event(event) -> str:
    """The event type name; workflow-task failures and timeouts also carry their cause/type,
    e.g. WorkflowTaskFailed(UNHANDLED_COMMAND)."""
    name = event_type_name(event.event_type)
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
        cause = event.workflow_task_failed_event_attributes.cause
        name += f"({WorkflowTaskFailedCause.Name(cause).removeprefix('WORKFLOW_TASK_FAILED_CAUSE_')})"
    elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        timeout_type = event.workflow_task_timed_out_event_attributes.timeout_type
        name += f"({TimeoutType.Name(timeout_type).removeprefix('TIMEOUT_TYPE_')})"
    return name


async def fetch_runs(client: Client, wf_id: str, run_id: str) -> List[List[HistoryEvent]]:
    """Full history of every run of the chain that starts at run_id (following continue-as-new
    and workflow retries)."""
    runs: List[List[HistoryEvent]] = []
    next_run = run_id
    while next_run:
        history = await within(client.get_workflow_handle(wf_id, run_id=next_run).fetch_history())
        runs.append(list(history.events))
        last = history.events[-1]
        next_run = ""
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            next_run = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        elif last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            next_run = last.workflow_execution_failed_event_attributes.new_execution_run_id
        elif last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
            next_run = last.workflow_execution_timed_out_event_attributes.new_execution_run_id
        assert len(runs) < 20, "runaway continue-as-new chain"
    return runs


@dataclass
class ScenarioResult:
    """One scenario on one server: its outcome and the full history of every run."""
    outcome: str
    runs: List[List[HistoryEvent]]

    def event_types(self) -> List[List[str]]:
        return [[describe_event(e) for e in run] for run in self.runs]


async def run_on(address: str, name: str) -> ScenarioResult:
    client = await within(Client.connect(address, namespace="default"))
    tq = unique("diff-tq")
    async with new_worker(client, tq):
        outcome, wf_id, run_id = await within(SCENARIOS[name](client, tq), 60)
    return ScenarioResult(outcome, await fetch_runs(client, wf_id, run_id))


# Results per (reference address, server address, scenario), so that the event-type test and
# the attribute test compare the same run instead of running each scenario twice.
_RESULTS: Dict[Tuple[str, str, str], Tuple[ScenarioResult, ScenarioResult]] = {}


async def run_on_both(name: str, reference_server, server) -> Tuple[ScenarioResult, ScenarioResult]:
    """(reference result, server-under-test result), run once per session."""
    key = (reference_server.address, server.address, name)
    if key not in _RESULTS:
        ref, sut = await asyncio.gather(
            run_on(reference_server.address, name), run_on(server.address, name))
        _RESULTS[key] = (ref, sut)
    return _RESULTS[key]


def render(runs: List[List[str]]) -> List[str]:
    lines: List[str] = []
    for i, run in enumerate(runs):
        lines.append(f"--- run {i + 1}")
        lines.extend(run)
    return lines


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_same_history(name: str, reference_server, server, workdir):
    ref, sut = await run_on_both(name, reference_server, server)
    ref_outcome, ref_runs = ref.outcome, ref.event_types()
    sut_outcome, sut_runs = sut.outcome, sut.event_types()

    record = {"scenario": name, "reference": {"outcome": ref_outcome, "runs": ref_runs},
              server.kind: {"outcome": sut_outcome, "runs": sut_runs}}
    (workdir / f"differential-{name}.json").write_text(json.dumps(record, indent=2))
    print(f"\n[{name}] reference: {ref_outcome}")
    print("\n".join(render(ref_runs)))

    if name in WITHOUT_TASK_EVENTS:
        ref_runs = [[e for e in run if e not in WFT_EVENTS] for run in ref_runs]
        sut_runs = [[e for e in run if e not in WFT_EVENTS] for run in sut_runs]
        print(f"[{name}] compared without {sorted(WFT_EVENTS)}")
    if ref_runs != sut_runs:
        diff = "\n".join(difflib.unified_diff(
            render(ref_runs), render(sut_runs), "reference", server.kind, lineterm=""))
        pytest.fail(f"event type sequences differ for {name}:\n{diff}")
    assert sut_outcome == ref_outcome


# --- event attributes -----------------------------------------------------------------------

# Scenarios whose event attributes (not only types) are compared, after normalising times and
# ids (see history_attributes.py).
ATTRIBUTE_SCENARIOS = [
    "hello_activity_timer",
    "activity_retries",
    "activity_non_retryable_error",
    "activity_retries_exhausted",
    "activity_schedule_to_start_timeout",
    "activity_start_to_close_timeout",
    # (Not "timer": its result is the elapsed workflow-clock time, which depends on how late the
    # timer fired. hello_activity_timer covers TimerStarted/TimerFired.)
    "timer_cancelled_by_signal",
    "signal",
    "signal_with_start",
    "cancel",
    "terminate",
    "continue_as_new",
    "workflow_failure",
    "local_activity",
    "patch_and_memo",
    "child_workflow",
    "workflow_retry",
    "run_timeout",
    "update_accepted_and_completed",
    "update_rejected_by_validator",
    "reset_reapplying_signals",
    "reset_reapplying_updates",
    "reset_after_child_started",
    "child_fails",
    "child_cancelled_by_parent",
    "child_id_already_running",
    "parent_close_terminates_child",
    "parent_close_cancels_child",
    "parent_close_abandons_child",
    "external_signal_and_missing_targets",
    "external_cancel_request",
    "upsert_search_attributes",
    "upsert_undefined_search_attribute",
    "start_delay",
    "execution_timeout",
]


def attribute_params():
    """One param per scenario; against Sundial, those with known divergences are expected to
    fail with exactly those (see known_divergences.py)."""
    for name in ATTRIBUTE_SCENARIOS:
        reason = xfail_reason(name) if harness.target() == "sundial" else ""
        marks = ([pytest.mark.xfail(strict=True, raises=KnownDivergences, reason=reason)]
                 if reason else [])
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(attribute_params()))
async def test_same_attributes(name: str, reference_server, server, workdir):
    ref, sut = await run_on_both(name, reference_server, server)
    ref_chain, sut_chain = normalise_chain(ref.runs), normalise_chain(sut.runs)
    record = {"scenario": name, "reference": asdict(ref_chain), "under_test": asdict(sut_chain)}
    (workdir / f"differential-attributes-{name}.json").write_text(json.dumps(record, indent=2))

    differences = history_differences(ref_chain, sut_chain)
    if server.kind != "sundial":
        unexplained, stale = differences, []
    else:
        unexplained, stale = classify(name, differences)
    if unexplained:
        pytest.fail(f"event attributes differ for {name} ({len(unexplained)} fields not "
                    "explained by known_divergences.py):\n"
                    + render_differences(unexplained, server.name))
    if stale:
        pytest.fail(f"known divergences {stale} no longer occur in {name}: update their "
                    "entries in known_divergences.py (drop the scenario, or the whole entry)")
    if differences:
        raise KnownDivergences(f"{name}: only known divergences ({len(differences)} fields):\n"
                               + render_differences(differences, server.name))


def test_attribute_scenarios_exist():
    """The attribute subset and the known divergences name real scenarios (no servers needed)."""
    assert set(ATTRIBUTE_SCENARIOS) <= set(SCENARIOS)
    for name, divergence in KNOWN_DIVERGENCES.items():
        assert divergence.scenarios == ALL or set(divergence.scenarios) <= set(
            ATTRIBUTE_SCENARIOS), name
