"""Workflows and activities used by the suite, written as an ordinary Temporal Python user would.

Kept in their own module so the workflow sandbox can re-import them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

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


ALL_ACTIVITIES = [say_hello, flaky, stop_heartbeating]

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


ALL_WORKFLOWS = [
    HelloActivityWorkflow,
    RetryWorkflow,
    HeartbeatTimeoutWorkflow,
    TimerWorkflow,
    SignalWorkflow,
    WaitForeverWorkflow,
    ContinueAsNewWorkflow,
]
