"""Small helpers shared by the test modules."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Awaitable, List, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from sundial_workflows import ALL_ACTIVITIES, ALL_WORKFLOWS
from update_workflows import UPDATE_WORKFLOWS

T = TypeVar("T")

# Upper bound for any single await against the server.
STEP_TIMEOUT = 30.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


async def connect_either(kind: str, reference_server, server) -> Client:
    """A client of the reference server (kind "reference") or of the server under test, for
    tests that run the same assertions on both."""
    srv = reference_server if kind == "reference" else server
    return await within(Client.connect(srv.address, namespace="default"))


def new_worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=ALL_WORKFLOWS + UPDATE_WORKFLOWS,
                  activities=ALL_ACTIVITIES)


async def within(awaitable: Awaitable[T], timeout: float = STEP_TIMEOUT) -> T:
    """Await with a timeout so a broken server fails the test instead of hanging it."""
    return await asyncio.wait_for(awaitable, timeout)


def event_type_name(value: int) -> str:
    """EVENT_TYPE_WORKFLOW_TASK_SCHEDULED -> WorkflowTaskScheduled."""
    name = EventType.Name(value).removeprefix("EVENT_TYPE_")
    return "".join(part.capitalize() for part in name.split("_"))


async def history_event_types(handle: WorkflowHandle) -> List[str]:
    history = await within(handle.fetch_history())
    return [event_type_name(e.event_type) for e in history.events]


async def wait_for_event(handle: WorkflowHandle, event_type: str, count: int = 1,
                         timeout: float = STEP_TIMEOUT) -> List[str]:
    """Poll the history until `event_type` has appeared `count` times; returns the types."""
    deadline = time.monotonic() + timeout
    types: List[str] = []
    while time.monotonic() < deadline:
        types = await history_event_types(handle)
        if types.count(event_type) >= count:
            return types
        await asyncio.sleep(0.05)
    raise AssertionError(f"{event_type} x{count} did not appear within {timeout}s; history: {types}")


async def wait_until_waiting(handle: WorkflowHandle, timeout: float = STEP_TIMEOUT) -> List[str]:
    """Wait until the first workflow task has completed (the workflow is blocked)."""
    return await wait_for_event(handle, "WorkflowTaskCompleted", 1, timeout)

