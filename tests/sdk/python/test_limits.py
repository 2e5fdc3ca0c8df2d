"""Platform limits set through dynamic config (`--dynamic-config-value KEY=VALUE`, as SDK test
fixtures pass it to `temporal server start-dev`): the same flags on the reference server and on
Sundial give the same histories and errors."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import harness
from helpers import new_worker, unique, within
from sundial_workflows import GrowUntilSuggestedWorkflow, HelloActivityWorkflow

LIMIT_FLAGS = [
    "--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=20",
    "--dynamic-config-value", "some.unknownKey=true",
]


async def _servers(workdir):
    servers = []
    for kind in ("reference", harness.target()):
        srv = harness.ServerProcess(kind, workdir, unique(f"limits-{kind}"), extra_args=LIMIT_FLAGS)
        await srv.astart()
        servers.append(srv)
    return servers


async def _history_types(client: Client, workflow_id: str) -> list:
    """Event types of every run of a chain, following continue-as-new."""
    runs = []
    run_id = None
    handle = client.get_workflow_handle(workflow_id)
    first = (await within(handle.describe())).raw_description.workflow_execution_info
    run_id = first.first_run_id
    while run_id:
        history = await within(client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history())
        runs.append([e.event_type for e in history.events])
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id or None
    return runs


async def test_suggest_continue_as_new_matches_reference(workdir):
    servers = await _servers(workdir)
    try:
        results = []
        for srv in servers:
            client = await within(Client.connect(srv.address, namespace="default"))
            tq = unique("tq")
            wf_id = unique("grow")
            async with new_worker(client, tq):
                handle = await within(client.start_workflow(
                    GrowUntilSuggestedWorkflow.run, 2, id=wf_id, task_queue=tq), 10)
                assert await within(handle.result(), 120) == 0
            results.append(await _history_types(client, wf_id))
        reference, sundial = results
        assert len(reference) == 3
        assert sundial == reference
    finally:
        for srv in servers:
            srv.stop()


async def _start_with_input(client: Client, size: int) -> None:
    await within(client.start_workflow(
        HelloActivityWorkflow.run, "x" * size, id=unique("big"), task_queue=unique("tq")))


async def test_blob_size_limit_matches_reference(workdir):
    """Inputs over `limit.blobSize.error` (2 MiB by default) are refused on both servers."""
    servers = await _servers(workdir)
    try:
        for srv in servers:
            client = await within(Client.connect(srv.address, namespace="default"))
            with pytest.raises(RPCError, match="Blob data size exceeds limit") as err:
                await _start_with_input(client, 3_000_000)
            assert err.value.status == RPCStatusCode.INVALID_ARGUMENT, srv
            await _start_with_input(client, 100_000)
    finally:
        for srv in servers:
            srv.stop()


async def test_blob_size_limit_is_dynamic_config(workdir):
    """Sundial applies a lowered `limit.blobSize.error`. (The reference CLI 1.9.1 ignores this
    override on start-dev, so this case is Sundial-only.)"""
    if harness.target() != "sundial":
        pytest.skip("Sundial-only: the reference ignores this override")
    srv = harness.ServerProcess("sundial", workdir, unique("blob"),
                                extra_args=["--dynamic-config-value", "limit.blobSize.error=2000"])
    await srv.astart()
    try:
        client = await within(Client.connect(srv.address, namespace="default"))
        with pytest.raises(RPCError, match="Blob data size exceeds limit"):
            await _start_with_input(client, 5000)
        await _start_with_input(client, 500)
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", ["reference", "target"])
async def test_max_id_length_is_dynamic_config(workdir, kind):
    """`limit.maxIDLength` bounds the ids and names of starts and signals, with Temporal's
    messages; other requests do not check it (a long workflow id is simply not found)."""
    kind = "reference" if kind == "reference" else harness.target()
    srv = harness.ServerProcess(kind, workdir, unique(f"idlen-{kind}"),
                                extra_args=["--dynamic-config-value", "limit.maxIDLength=40"])
    await srv.astart()
    try:
        client = await within(Client.connect(srv.address, namespace="default"))
        long_id = "w" * 41

        async def refused(call, message: str, code=RPCStatusCode.INVALID_ARGUMENT) -> None:
            with pytest.raises(RPCError) as err:
                await within(call)
            assert (err.value.status, err.value.message) == (code, message)

        too_long = "WorkflowId exceeds maximum allowed length (41/40)"
        await refused(client.start_workflow(
            HelloActivityWorkflow.run, "x", id=long_id, task_queue="q"), too_long)
        await refused(client.start_workflow(
            HelloActivityWorkflow.run, "x", id=long_id, task_queue="q", start_signal="s"),
            too_long)
        await refused(client.start_workflow(
            HelloActivityWorkflow.run, "x", id=unique("ok"), task_queue="q" * 41),
            "taskQueue length exceeds limit")
        await refused(client.start_workflow(
            "T" * 41, id=unique("ok"), task_queue="q"), "WorkflowType length exceeds limit.")
        await refused(client.get_workflow_handle(unique("ok")).signal("s" * 41),
                      "SignalName length exceeds limit.")
        not_found = f"workflow not found for ID: {long_id}"
        await refused(client.get_workflow_handle(long_id).signal("s"), not_found,
                      RPCStatusCode.NOT_FOUND)
        await refused(client.get_workflow_handle(long_id).terminate(), not_found,
                      RPCStatusCode.NOT_FOUND)
        # Within the limit all is well.
        tq = unique("tq")[:40]
        async with new_worker(client, tq):
            assert await within(client.execute_workflow(
                HelloActivityWorkflow.run, "x", id="w" * 40, task_queue=tq)) == "Hello, x!"
    finally:
        srv.stop()
