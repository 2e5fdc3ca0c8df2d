"""Workflows and activities used by the suite, written as an ordinary Temporal Python user would.

Kept in their own module so the workflow sandbox can re-import them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import List, Optional

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    import sundial_flags

# ---------------------------------------------------------------------------------------------
# Activities
# ---------------------------------------------------------------------------------------------


@activity.defn
async def say_hello(name: str) -> str:
    return f"Hello, {name}!"


@activity.defn
async def flaky(succeed_on_attempt: int) -> int:
    """Fails until attempt `succeed_on_attempt`, then returns the attempt number."""
    attempt = activity.info().attempt
    if attempt < succeed_on_attempt:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    return attempt


@activity.defn
async def stop_heartbeating() -> str:
    """Heartbeats once, then goes silent for longer than its heartbeat timeout."""
    activity.heartbeat("alive once")
    await asyncio.sleep(10)  # cancelled at worker shutdown
    return "should have timed out"


@activity.defn
async def sleep_for(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@activity.defn
async def fail_for_good(kind: str) -> str:
    """Always fails with an ApplicationError of type `kind` (non-retryable iff kind says so)."""
    raise ApplicationError(f"{kind} failure on purpose", type=kind,
                           non_retryable=(kind == "NonRetryable"))


@activity.defn
async def heartbeat_until_cancelled() -> str:
    """Heartbeats every 200 ms until cancelled; the CancelledError propagates (activity canceled)."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.2)


@activity.defn
async def signal_self(signal_name: str, count: int, delay: float) -> int:
    """Sleeps `delay` seconds, then sends `count` signals to the workflow that scheduled it.

    Run as a local activity it executes while that workflow's task is in flight, so the server
    must buffer the signals."""
    await asyncio.sleep(delay)
    info = activity.info()
    handle = activity.client().get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
    for i in range(count):
        await handle.signal(signal_name, f"s{i}")
    return count


ALL_ACTIVITIES = [say_hello, flaky, stop_heartbeating, sleep_for, fail_for_good,
                  heartbeat_until_cancelled, signal_self]

# ---------------------------------------------------------------------------------------------
# Workflows
# ---------------------------------------------------------------------------------------------


@workflow.defn
class HelloActivityWorkflow:
    """One activity, then a 1-second timer."""

    @workflow.run
    async def run(self, name: str) -> str:
        greeting = await workflow.execute_activity(
            say_hello, name, start_to_close_timeout=timedelta(seconds=10))
        await asyncio.sleep(1)
        return greeting


@workflow.defn
class RetryWorkflow:
    """An activity that fails twice before succeeding; returns the attempt that succeeded."""

    @workflow.run
    async def run(self, succeed_on_attempt: int) -> int:
        return await workflow.execute_activity(
            flaky,
            succeed_on_attempt,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100),
                backoff_coefficient=1.0,
                maximum_attempts=5,
            ),
        )


@workflow.defn
class HeartbeatTimeoutWorkflow:
    """Returns the timeout type name of an activity that stops heartbeating."""

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                stop_heartbeating,
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=1),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as err:
            if isinstance(err.cause, TemporalTimeoutError):
                return err.cause.type.name if err.cause.type is not None else "UNKNOWN"
            return f"unexpected cause: {type(err.cause).__name__}"
        return "activity did not time out"


@workflow.defn
class TimerWorkflow:
    """Sleeps `seconds`; returns the workflow-clock time that elapsed."""

    @workflow.run
    async def run(self, seconds: float) -> float:
        start = workflow.now()
        await asyncio.sleep(seconds)
        return (workflow.now() - start).total_seconds()


@workflow.defn
class SignalWorkflow:
    """Waits for the `deliver` signal and returns its payload; `state` query reports progress."""

    def __init__(self) -> None:
        self._value: Optional[str] = None

    @workflow.signal
    def deliver(self, value: str) -> None:
        self._value = value

    @workflow.query
    def state(self) -> str:
        return "waiting" if self._value is None else f"got {self._value}"

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._value is not None)
        assert self._value is not None
        return self._value


@workflow.defn
class WaitForeverWorkflow:
    """Never finishes on its own (used for cancel and terminate)."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@dataclass
class CounterInput:
    count: int
    target: int


@workflow.defn
class ContinueAsNewWorkflow:
    """Continues as new until count reaches target, carrying the counter; returns the count."""

    @workflow.run
    async def run(self, arg: CounterInput) -> int:
        if arg.count < arg.target:
            workflow.continue_as_new(CounterInput(count=arg.count + 1, target=arg.target))
        return arg.count


def describe_activity_error(err: ActivityError) -> str:
    cause = err.cause
    detail = type(cause).__name__
    if isinstance(cause, ApplicationError):
        detail += f"({cause.type}, non_retryable={cause.non_retryable})"
    elif isinstance(cause, TemporalTimeoutError):
        detail += f"({cause.type.name if cause.type is not None else None})"
    retry_state = err.retry_state.name if err.retry_state is not None else None
    return f"{detail} retry_state={retry_state}"


@workflow.defn
class SignalDuringActivityWorkflow:
    """Runs a 1 s activity, then waits for a `deliver` signal (sent while the activity runs)."""

    def __init__(self) -> None:
        self._signals: List[str] = []

    @workflow.signal
    def deliver(self, value: str) -> None:
        self._signals.append(value)

    @workflow.run
    async def run(self) -> str:
        slept = await workflow.execute_activity(
            sleep_for, 1.0, start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: bool(self._signals))
        return f"{slept}; signals {self._signals}"


@workflow.defn
class FailingWorkflow:
    """Fails the workflow execution with an ApplicationError."""

    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("workflow fails on purpose", type="Boom")


@workflow.defn
class ActivityFailureWorkflow:
    """Runs an always-failing activity; returns a description of the ActivityError.

    kind: NonRetryable (error flagged non-retryable), Fatal (type listed in the retry policy's
    non_retryable_error_types), Exhaust (retries until maximum_attempts=2)."""

    @workflow.run
    async def run(self, kind: str) -> str:
        try:
            await workflow.execute_activity(
                fail_for_good, kind, start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0,
                    maximum_attempts=2 if kind == "Exhaust" else 5,
                    non_retryable_error_types=["Fatal"]))
        except ActivityError as err:
            return describe_activity_error(err)
        return "activity did not fail"


@workflow.defn
class ActivityCancelWorkflow:
    """Starts an activity, sleeps 1 s, cancels the activity, returns how it ended.

    mode: started-wait / started-try (heartbeating activity on this worker, cancellation type
    WAIT_CANCELLATION_COMPLETED / TRY_CANCEL); unstarted-wait / unstarted-try (activity on
    `no_worker_tq`, which nobody polls)."""

    @workflow.run
    async def run(self, mode: str, no_worker_tq: str) -> str:
        cancellation_type = (ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                             if mode.endswith("-wait") else ActivityCancellationType.TRY_CANCEL)
        if mode.startswith("started"):
            handle = workflow.start_activity(
                heartbeat_until_cancelled, start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=2), cancellation_type=cancellation_type)
        else:
            handle = workflow.start_activity(
                say_hello, "nobody", task_queue=no_worker_tq,
                schedule_to_close_timeout=timedelta(seconds=30),
                cancellation_type=cancellation_type)
        await asyncio.sleep(1)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            return describe_activity_error(err)
        except CancelledError:
            return "CancelledError (raised directly)"
        return "activity was not cancelled"


@workflow.defn
class AwaitActivityWorkflow:
    """Awaits a heartbeating activity forever; used to cancel the whole workflow meanwhile."""

    @workflow.run
    async def run(self, wait_for_activity_cancel: bool) -> None:
        await workflow.execute_activity(
            heartbeat_until_cancelled, start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=2),
            cancellation_type=(ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                               if wait_for_activity_cancel
                               else ActivityCancellationType.TRY_CANCEL))


@workflow.defn
class ActivityTimeoutWorkflow:
    """An activity that times out; returns the description of the ActivityError.

    mode: schedule-to-start (activity on `no_worker_tq`), start-to-close (5 s activity with a 1 s
    start-to-close timeout, 2 attempts)."""

    @workflow.run
    async def run(self, mode: str, no_worker_tq: str) -> str:
        try:
            if mode == "schedule-to-start":
                await workflow.execute_activity(
                    say_hello, "nobody", task_queue=no_worker_tq,
                    schedule_to_start_timeout=timedelta(seconds=1),
                    start_to_close_timeout=timedelta(seconds=10))
            else:
                await workflow.execute_activity(
                    sleep_for, 5.0, start_to_close_timeout=timedelta(seconds=1),
                    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100),
                                             maximum_attempts=2))
        except ActivityError as err:
            return describe_activity_error(err)
        return "activity did not time out"


@workflow.defn
class TimerCancelWorkflow:
    """wait_condition with a 60 s timeout, satisfied early by the `deliver` signal."""

    def __init__(self) -> None:
        self._value: Optional[str] = None

    @workflow.signal
    def deliver(self, value: str) -> None:
        self._value = value

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.wait_condition(lambda: self._value is not None,
                                          timeout=timedelta(seconds=60))
        except asyncio.TimeoutError:
            return "timed out"
        return f"signalled {self._value}"


@workflow.defn
class TimerFiresDuringTaskWorkflow:
    """A 2 s timer fires while a workflow task (started by a 0.5 s timer) is held open by a 3 s
    local activity; the workflow then cancels the 2 s timer in that same task, so the server
    must drop the buffered TimerFired. (Margins are >= 1 s: the reference fires timers late.)"""

    @workflow.run
    async def run(self) -> str:
        long_timer = asyncio.create_task(asyncio.sleep(2.0))
        await asyncio.sleep(0.5)
        await workflow.execute_local_activity(
            sleep_for, 3.0, start_to_close_timeout=timedelta(seconds=10))
        long_timer.cancel()
        try:
            await long_timer
            fired = "timer completed"
        except asyncio.CancelledError:
            fired = "timer cancelled"
        await asyncio.sleep(0.1)
        return fired


@workflow.defn
class LocalActivityWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_local_activity(
            say_hello, name, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn
class PatchAndMemoWorkflow:
    """workflow.patched (version marker) and workflow.upsert_memo."""

    @workflow.run
    async def run(self) -> str:
        branch = "patched" if workflow.patched("my-change") else "original"
        workflow.upsert_memo({"stage": branch})
        await asyncio.sleep(0.1)
        return branch


@workflow.defn
class FailTaskUntilAllowedWorkflow:
    """Fails its workflow task (RuntimeError, not an ApplicationError) until the test calls
    sundial_flags.allow(workflow_id)."""

    @workflow.run
    async def run(self) -> str:
        if not sundial_flags.is_allowed(workflow.info().workflow_id):
            raise RuntimeError("workflow task fails until the test allows it")
        return "passed"


@workflow.defn
class ParallelWorkflow:
    """Two activities (0 s and 2 s) and a 0.5 s timer in parallel."""

    @workflow.run
    async def run(self) -> List[str]:
        quick, slow, _ = await asyncio.gather(
            workflow.execute_activity(sleep_for, 0.0, start_to_close_timeout=timedelta(seconds=10)),
            workflow.execute_activity(sleep_for, 2.0, start_to_close_timeout=timedelta(seconds=10)),
            asyncio.sleep(0.5),
        )
        return [quick, slow]


@workflow.defn
class BufferedSignalsWorkflow:
    """A local activity signals this workflow `count` times while the workflow task is in flight.

    mode: wait (then wait for all signals), complete (return right after the local activity),
    continue (continue-as-new right after the local activity; the next run has count 0)."""

    def __init__(self) -> None:
        self._signals: List[str] = []

    @workflow.signal
    def deliver(self, value: str) -> None:
        self._signals.append(value)

    @workflow.run
    async def run(self, mode: str, count: int) -> str:
        if count > 0 and not self._signals:
            await workflow.execute_local_activity(
                signal_self, args=["deliver", count, 0.0],
                start_to_close_timeout=timedelta(seconds=10))
        if mode == "wait":
            await workflow.wait_condition(lambda: len(self._signals) >= count)
        elif mode == "continue":
            workflow.continue_as_new(args=["complete", 0])
        return f"{len(self._signals)} signals"


@workflow.defn
class ManySignalsWorkflow:
    """Returns once it has received `count` `deliver` signals."""

    def __init__(self) -> None:
        self._signals: List[str] = []

    @workflow.signal
    def deliver(self, value: str) -> None:
        self._signals.append(value)

    @workflow.run
    async def run(self, count: int) -> int:
        await workflow.wait_condition(lambda: len(self._signals) >= count)
        return len(self._signals)


@workflow.defn
class ReorderOnFlushWorkflow:
    """Task 2 (started when a 0 s activity completes) is held open by a local activity that
    sleeps 2 s and then signals the workflow; meanwhile a 1 s activity completes. Both the
    activity completion and the signal land in the server's buffer, in that order."""

    def __init__(self) -> None:
        self._signals: List[str] = []

    @workflow.signal
    def deliver(self, value: str) -> None:
        self._signals.append(value)

    @workflow.run
    async def run(self) -> str:
        quick = workflow.start_activity(sleep_for, 0.0, start_to_close_timeout=timedelta(seconds=10))
        act = workflow.start_activity(sleep_for, 1.0, start_to_close_timeout=timedelta(seconds=10))
        await quick
        await workflow.execute_local_activity(
            signal_self, args=["deliver", 1, 2.0], start_to_close_timeout=timedelta(seconds=10))
        result = await act
        await workflow.wait_condition(lambda: bool(self._signals))
        return f"{result}; signals {self._signals}"


@workflow.defn
class EchoChildWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        await asyncio.sleep(1)
        return value.upper()


@workflow.defn
class ParentWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        try:
            return await workflow.execute_child_workflow(
                EchoChildWorkflow.run, value, id=f"{workflow.info().workflow_id}-child")
        except ChildWorkflowError as err:
            return f"child failed: {type(err.cause).__name__}"


@workflow.defn
class RetriedWorkflow:
    """Fails its first run; succeeds on workflow attempt 2 (start it with a retry policy)."""

    @workflow.run
    async def run(self) -> int:
        if workflow.info().attempt < 2:
            raise ApplicationError("first attempt fails on purpose", type="FirstAttempt")
        return workflow.info().attempt


ALL_WORKFLOWS = [
    SignalDuringActivityWorkflow,
    FailingWorkflow,
    ActivityFailureWorkflow,
    ActivityCancelWorkflow,
    AwaitActivityWorkflow,
    ActivityTimeoutWorkflow,
    TimerCancelWorkflow,
    TimerFiresDuringTaskWorkflow,
    LocalActivityWorkflow,
    PatchAndMemoWorkflow,
    FailTaskUntilAllowedWorkflow,
    ParallelWorkflow,
    BufferedSignalsWorkflow,
    ManySignalsWorkflow,
    ReorderOnFlushWorkflow,
    EchoChildWorkflow,
    ParentWorkflow,
    RetriedWorkflow,
    HelloActivityWorkflow,
    RetryWorkflow,
    HeartbeatTimeoutWorkflow,
    TimerWorkflow,
    SignalWorkflow,
    WaitForeverWorkflow,
    ContinueAsNewWorkflow,
]


@workflow.defn
class GrowUntilSuggestedWorkflow:
    """Sleeps 0.1 s at a time until the server suggests continue-as-new, then continues as new;
    the last run (`runs_left` 0) completes at once. Returns how many sleeps the last grower did."""

    @workflow.run
    async def run(self, runs_left: int) -> int:
        if runs_left == 0:
            return 0
        sleeps = 0
        while not workflow.info().is_continue_as_new_suggested():
            await asyncio.sleep(0.1)
            sleeps += 1
            if sleeps > 200:
                raise RuntimeError("continue-as-new was never suggested")
        workflow.continue_as_new(runs_left - 1)


ALL_WORKFLOWS.append(GrowUntilSuggestedWorkflow)


@workflow.defn
class CronTickWorkflow:
    """One tick of a cron schedule: returns how many ticks came before (from the last
    completion result)."""

    @workflow.run
    async def run(self) -> int:
        last = workflow.get_last_completion_result(type_hint=int)
        return (last or 0) + 1


ALL_WORKFLOWS.append(CronTickWorkflow)


@workflow.defn
class CollectSignalsWorkflow:
    """Greets with an activity, then collects `add` signals until it has `count` of them;
    returns the greeting and the values (used by the reset tests)."""

    def __init__(self) -> None:
        self._values: List[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self._values.append(value)

    @workflow.run
    async def run(self, count: int) -> str:
        greeting = await workflow.execute_activity(
            say_hello, "reset", start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: len(self._values) >= count)
        return f"{greeting} {','.join(self._values)}"


ALL_WORKFLOWS.append(CollectSignalsWorkflow)


@workflow.defn
class FailingChildWorkflow:
    """A child that fails for good."""

    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("the child fails", type="ChildFailure", non_retryable=True)


@workflow.defn
class ChildOutcomesWorkflow:
    """Runs children to each outcome a parent sees: `fail` (the child fails), `cancel` (the
    parent cancels a waiting child), `existing` (the child id belongs to a running workflow:
    the start fails)."""

    @workflow.run
    async def run(self, mode: str, child_id: str) -> str:
        if mode == "fail":
            try:
                await workflow.execute_child_workflow(FailingChildWorkflow.run, id=child_id)
            except ChildWorkflowError as err:
                return f"child failed: {type(err.cause).__name__}"
        elif mode == "cancel":
            child = await workflow.start_child_workflow(WaitForeverWorkflow.run, id=child_id)
            child.cancel()
            try:
                await child
            except ChildWorkflowError as err:
                return f"child cancelled: {type(err.cause).__name__}"
        elif mode == "existing":
            try:
                await workflow.start_child_workflow(WaitForeverWorkflow.run, id=child_id)
            except Exception as err:  # the SDK's WorkflowAlreadyStartedError
                return f"child not started: {type(err).__name__}"
        return "unexpected"


@workflow.defn
class AbandonChildWorkflow:
    """Starts a waiting child under `policy`, then completes on the `finish` signal, leaving
    the parent-close policy to act on the child."""

    def __init__(self) -> None:
        self._done = False

    @workflow.signal
    def finish(self) -> None:
        self._done = True

    @workflow.run
    async def run(self, policy: str, child_id: str) -> str:
        await workflow.start_child_workflow(
            WaitForeverWorkflow.run, id=child_id,
            parent_close_policy=workflow.ParentClosePolicy[policy])
        await workflow.wait_condition(lambda: self._done)
        return "parent done"


@workflow.defn
class ExternalWorkflow:
    """Signals, then cancels, another workflow by id; then tries both on a missing one."""

    @workflow.run
    async def run(self, target: str) -> str:
        outcomes = []
        other = workflow.get_external_workflow_handle(target)
        await other.signal(SignalWorkflow.deliver, "from a workflow")
        outcomes.append("signalled")
        missing = workflow.get_external_workflow_handle(f"{target}-missing")
        for name, call in (("signal", lambda: missing.signal("nothing")),
                           ("cancel", lambda: missing.cancel())):
            try:
                await call()
                outcomes.append(f"{name} missing: ok")
            except Exception as err:
                outcomes.append(f"{name} missing: {type(err).__name__}")
        return "; ".join(outcomes)


@workflow.defn
class CancelOtherWorkflow:
    """Requests cancellation of another workflow by id."""

    @workflow.run
    async def run(self, target: str) -> str:
        await workflow.get_external_workflow_handle(target).cancel()
        return "cancel requested"


@workflow.defn
class SearchAttributesWorkflow:
    """Upserts a keyword and an int search attribute, then returns them as it sees them."""

    @workflow.run
    async def run(self) -> str:
        from temporalio.common import SearchAttributeKey

        keyword = SearchAttributeKey.for_keyword("CustomKeywordField")
        number = SearchAttributeKey.for_int("CustomIntField")
        workflow.upsert_search_attributes([keyword.value_set("blue"), number.value_set(7)])
        await asyncio.sleep(0.1)
        attrs = workflow.info().typed_search_attributes
        return f"{attrs.get(keyword)} {attrs.get(number)}"


@workflow.defn
class UpsertKeywordWorkflow:
    """Upserts CustomKeywordField only."""

    @workflow.run
    async def run(self) -> None:
        from temporalio.common import SearchAttributeKey

        workflow.upsert_search_attributes(
            [SearchAttributeKey.for_keyword("CustomKeywordField").value_set("x")])


ALL_WORKFLOWS += [FailingChildWorkflow, ChildOutcomesWorkflow, AbandonChildWorkflow,
                  ExternalWorkflow, CancelOtherWorkflow, SearchAttributesWorkflow]


@workflow.defn
class UpsertUndefinedWorkflow:
    """Upserts a search attribute the namespace never registered: its workflow task fails
    (BAD_SEARCH_ATTRIBUTES) until the workflow is terminated."""

    @workflow.run
    async def run(self) -> None:
        from temporalio.common import SearchAttributeKey

        workflow.upsert_search_attributes(
            [SearchAttributeKey.for_keyword("NeverRegisteredField").value_set("x")])
        await workflow.wait_condition(lambda: False)


ALL_WORKFLOWS.append(UpsertUndefinedWorkflow)
