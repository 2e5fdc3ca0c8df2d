"""Workflows with update handlers, written as an ordinary Temporal Python user would.

Kept in their own module so the workflow sandbox can re-import them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import List

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sundial_workflows import say_hello, sleep_for


@workflow.defn
class CounterUpdateWorkflow:
    """Adds amounts on update (negative ones are rejected by the validator); finishes on
    the `finish` signal with the total."""

    def __init__(self) -> None:
        self._total = 0
        self._done = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._done)
        return self._total

    @workflow.update
    async def add(self, amount: int) -> int:
        self._total += amount
        return self._total

    @add.validator
    def validate_add(self, amount: int) -> None:
        if amount < 0:
            raise ValueError(f"cannot add a negative amount: {amount}")

    @workflow.update
    async def add_after_activity(self, amount: int) -> str:
        """Accepted at once, completed only after an activity: ACCEPTED comes before
        COMPLETED."""
        greeting = await workflow.execute_activity(
            say_hello, f"update {amount}", start_to_close_timeout=timedelta(seconds=10))
        self._total += amount
        return greeting

    @workflow.update
    async def add_after_timer(self, amount: int) -> int:
        """Completes only after a 1 s timer: a caller waiting for ACCEPTED returns first."""
        await asyncio.sleep(1)
        self._total += amount
        return self._total

    @workflow.signal
    def finish(self) -> None:
        self._done = True

    @workflow.query
    def total(self) -> int:
        return self._total


@workflow.defn
class UpdateWithStartWorkflow:
    """Collects items from updates; the update-with-start's update is the first one."""

    def __init__(self) -> None:
        self._items: List[str] = []
        self._done = False

    @workflow.run
    async def run(self, greeting: str) -> str:
        await workflow.wait_condition(lambda: self._done)
        return f"{greeting}: {', '.join(self._items)}"

    @workflow.update
    async def put(self, item: str) -> int:
        self._items.append(item)
        return len(self._items)

    @put.validator
    def validate_put(self, item: str) -> None:
        if not item:
            raise ValueError("empty item")

    @workflow.signal
    def finish(self) -> None:
        self._done = True


@workflow.defn
class BusyUpdateWorkflow:
    """Its first workflow task runs a 1 s local activity: an update sent meanwhile arrives
    while a workflow task is in flight."""

    def __init__(self) -> None:
        self._notes: List[str] = []
        self._done = False

    @workflow.run
    async def run(self) -> List[str]:
        await workflow.execute_local_activity(
            sleep_for, 1.0, start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: self._done)
        return self._notes

    @workflow.update
    async def note(self, text: str) -> int:
        self._notes.append(text)
        return len(self._notes)

    @workflow.signal
    def finish(self) -> None:
        self._done = True


UPDATE_WORKFLOWS = [CounterUpdateWorkflow, UpdateWithStartWorkflow, BusyUpdateWorkflow]
