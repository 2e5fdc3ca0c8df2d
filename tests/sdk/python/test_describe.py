"""DescribeWorkflowExecution, with the same assertions on the reference server and on the
target: pending activities with their options and worker, the root execution, reset points,
and the extended info (expiration times, request ids, reset links)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

from helpers import connect_either, new_worker, unique, wait_for_event, within
from sundial_workflows import AwaitActivityWorkflow, CollectSignalsWorkflow

SERVERS = ["reference", "target"]


@pytest.mark.parametrize("kind", SERVERS)
async def test_describe_running_workflow_with_activity(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("describe-tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            AwaitActivityWorkflow.run, False, id=unique("describe"), task_queue=tq,
            execution_timeout=timedelta(hours=1)))
        # Wait for the activity to start and send its first heartbeat.
        for _ in range(100):
            raw = (await within(handle.describe())).raw_description
            if raw.pending_activities and raw.pending_activities[0].HasField("last_heartbeat_time"):
                break
            await asyncio.sleep(0.1)
        info = raw.workflow_execution_info
        run = WorkflowExecution(workflow_id=handle.id, run_id=handle.result_run_id)
        assert info.root_execution == run
        points = info.auto_reset_points.points
        assert len(points) == 1
        assert (points[0].run_id, points[0].first_workflow_task_completed_id) == (run.run_id, 4)
        assert points[0].resettable and points[0].build_id

        activity = raw.pending_activities[0]
        options = activity.activity_options
        assert options.task_queue.name == tq
        assert options.start_to_close_timeout.ToTimedelta() == timedelta(seconds=30)
        assert options.heartbeat_timeout.ToTimedelta() == timedelta(seconds=2)
        assert options.retry_policy.backoff_coefficient == 2.0
        # No schedule-to-close timeout was given: the run's (one hour) bounds it.
        assert options.schedule_to_close_timeout.ToTimedelta() == timedelta(hours=1)
        assert activity.HasField("expiration_time")
        assert activity.last_worker_identity == client.identity

        extended = raw.workflow_extended_info
        assert extended.original_start_time == info.start_time
        # (The reference takes the start time a moment after computing the expiration.)
        expires_after = extended.execution_expiration_time.ToDatetime() - \
            info.start_time.ToDatetime()
        assert abs(expires_after - timedelta(hours=1)) < timedelta(seconds=1)
        assert extended.HasField("run_expiration_time")
        assert not extended.cancel_requested
        assert [i.event_id for i in extended.request_id_infos.values()] == [1]
        assert [i.event_type for i in extended.request_id_infos.values()] == \
            [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED]
        await within(handle.terminate("done"))


@pytest.mark.parametrize("kind", SERVERS)
async def test_describe_links_a_reset(kind, reference_server, server):
    client = await connect_either(kind, reference_server, server)
    tq = unique("describe-tq")
    async with new_worker(client, tq):
        handle = await within(client.start_workflow(
            CollectSignalsWorkflow.run, 1, id=unique("describe-reset"), task_queue=tq))
        await wait_for_event(handle, "WorkflowTaskCompleted", 2)
        base = (await within(handle.describe())).raw_description.workflow_extended_info
        assert not base.reset_run_id and not base.HasField("last_reset_time")
        response = await within(client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace="default",
                workflow_execution=WorkflowExecution(
                    workflow_id=handle.id, run_id=handle.result_run_id),
                reason="describe", workflow_task_finish_event_id=4,
                request_id=str(uuid.uuid4()))))
        base_run = client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        base = (await within(base_run.describe())).raw_description.workflow_extended_info
        assert base.reset_run_id == response.run_id
        new = await within(client.get_workflow_handle(handle.id, run_id=response.run_id)
                           .describe())
        extended = new.raw_description.workflow_extended_info
        assert extended.HasField("last_reset_time")
        # The new run starts at the reset; the original start is kept.
        base_info = (await within(base_run.describe())).raw_description.workflow_execution_info
        assert extended.original_start_time == base_info.start_time
        assert new.raw_description.workflow_execution_info.start_time.ToDatetime() > \
            base_info.start_time.ToDatetime()
        await within(client.get_workflow_handle(handle.id).terminate("done"))
