"""The `temporal` CLI against the server under test; Python workers run inside each test."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, List

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import CancelledError

import harness
from helpers import STEP_TIMEOUT, new_worker, unique, wait_until_waiting

pytestmark = pytest.mark.cli


@dataclass
class CliResult:
    args: List[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.describe()
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"not JSON ({e}):\n{self.describe()}") from None

    def describe(self) -> str:
        return (f"temporal {' '.join(self.args)} -> exit {self.returncode}\n"
                f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")


async def temporal(server, *args: str, timeout: float = STEP_TIMEOUT) -> CliResult:
    """Run the temporal CLI asynchronously (so in-test workers keep running) with a timeout."""
    full = [*args, "--address", server.address, "--namespace", "default",
            "--disable-config-file", "--disable-config-env"]
    proc = await asyncio.create_subprocess_exec(
        harness.temporal_bin(), *full, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=harness.cli_env())
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"temporal {' '.join(full)} did not finish within {timeout}s")
    return CliResult(full, proc.returncode, out.decode(), err.decode())


def event_types(show_json: Any) -> List[str]:
    return [e["eventType"] for e in show_json["events"]]


async def test_namespace_describe(server):
    res = await temporal(server, "operator", "namespace", "describe", "-o", "json")
    ns = res.json()
    assert ns["namespaceInfo"]["name"] == "default"
    assert ns["namespaceInfo"]["state"] == "NAMESPACE_STATE_REGISTERED"
    assert ns["namespaceInfo"]["id"]
    assert "workflowExecutionRetentionTtl" in ns["config"]


async def test_namespace_describe_positional(server):
    # The older spelling, `temporal operator namespace describe default`, still works.
    res = await temporal(server, "operator", "namespace", "describe", "default", "-o", "json")
    assert res.json()["namespaceInfo"]["name"] == "default"


async def test_describe_unknown_workflow_fails(server):
    res = await temporal(server, "workflow", "describe", "-w", unique("missing"), "-o", "json")
    assert res.returncode != 0, res.describe()
    assert "not found" in res.stderr.lower(), res.describe()


async def test_start_describe_query_signal_show(server, client: Client):
    tq = unique("tq")
    wf_id = unique("cli-signal")
    async with new_worker(client, tq):
        start = (await temporal(server, "workflow", "start", "--type", "SignalWorkflow",
                                "--task-queue", tq, "--workflow-id", wf_id, "-o", "json")).json()
        assert start["workflowId"] == wf_id
        assert start["runId"]
        assert start["type"] == "SignalWorkflow"

        handle = client.get_workflow_handle(wf_id, run_id=start["runId"])
        await wait_until_waiting(handle)

        desc = (await temporal(server, "workflow", "describe", "-w", wf_id, "-o", "json")).json()
        info = desc["workflowExecutionInfo"]
        assert info["execution"] == {"workflowId": wf_id, "runId": start["runId"]}
        assert info["type"]["name"] == "SignalWorkflow"
        assert info["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
        assert desc["executionConfig"]["taskQueue"]["name"] == tq

        query = (await temporal(server, "workflow", "query", "-w", wf_id, "--name", "state",
                                "-o", "json")).json()
        assert query["queryResult"] == ["waiting"]

        sig = await temporal(server, "workflow", "signal", "-w", wf_id, "--name", "deliver",
                             "--input", '"from the cli"')
        assert sig.returncode == 0, sig.describe()
        assert await asyncio.wait_for(handle.result(), STEP_TIMEOUT) == "from the cli"

    result = (await temporal(server, "workflow", "result", "-w", wf_id, "-o", "json")).json()
    assert result["status"] == "COMPLETED"
    assert result["result"] == "from the cli"
    assert result["closeEvent"]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"

    desc = (await temporal(server, "workflow", "describe", "-w", wf_id, "-o", "json")).json()
    assert desc["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"

    show = (await temporal(server, "workflow", "show", "-w", wf_id, "-o", "json")).json()
    types = event_types(show)
    assert types[0] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" in types
    assert types[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
    assert [int(e["eventId"]) for e in show["events"]] == list(range(1, len(types) + 1))
    signaled = next(e for e in show["events"]
                    if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED")
    assert signaled["workflowExecutionSignaledEventAttributes"]["signalName"] == "deliver"


async def test_start_with_input_and_result(server, client: Client):
    tq = unique("tq")
    wf_id = unique("cli-hello")
    async with new_worker(client, tq):
        start = await temporal(server, "workflow", "start", "--type", "HelloActivityWorkflow",
                               "--task-queue", tq, "--workflow-id", wf_id, "--input", '"CLI"',
                               "-o", "json")
        start.json()
        result = await temporal(server, "workflow", "result", "-w", wf_id, "-o", "json")
    assert result.json()["result"] == "Hello, CLI!"
    show = (await temporal(server, "workflow", "show", "-w", wf_id, "-o", "json")).json()
    types = event_types(show)
    assert "EVENT_TYPE_ACTIVITY_TASK_COMPLETED" in types
    assert "EVENT_TYPE_TIMER_FIRED" in types
    assert types[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"


async def test_cancel(server, client: Client):
    tq = unique("tq")
    wf_id = unique("cli-cancel")
    async with new_worker(client, tq):
        start = (await temporal(server, "workflow", "start", "--type", "WaitForeverWorkflow",
                                "--task-queue", tq, "--workflow-id", wf_id, "-o", "json")).json()
        handle = client.get_workflow_handle(wf_id, run_id=start["runId"])
        await wait_until_waiting(handle)

        res = await temporal(server, "workflow", "cancel", "-w", wf_id)
        assert res.returncode == 0, res.describe()
        with pytest.raises(WorkflowFailureError) as excinfo:
            await asyncio.wait_for(handle.result(), STEP_TIMEOUT)
        assert isinstance(excinfo.value.cause, CancelledError)

    desc = (await temporal(server, "workflow", "describe", "-w", wf_id, "-o", "json")).json()
    assert desc["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_CANCELED"
    types = event_types((await temporal(server, "workflow", "show", "-w", wf_id,
                                        "-o", "json")).json())
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED" in types
    assert types[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"


async def test_terminate(server, client: Client):
    tq = unique("tq")
    wf_id = unique("cli-terminate")
    async with new_worker(client, tq):
        start = (await temporal(server, "workflow", "start", "--type", "WaitForeverWorkflow",
                                "--task-queue", tq, "--workflow-id", wf_id, "-o", "json")).json()
        handle = client.get_workflow_handle(wf_id, run_id=start["runId"])
        await wait_until_waiting(handle)

        res = await temporal(server, "workflow", "terminate", "-w", wf_id, "--reason", "cli says stop")
        assert res.returncode == 0, res.describe()

    desc = (await temporal(server, "workflow", "describe", "-w", wf_id, "-o", "json")).json()
    assert desc["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_TERMINATED"
    show = (await temporal(server, "workflow", "show", "-w", wf_id, "-o", "json")).json()
    last = show["events"][-1]
    assert last["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED"
    assert last["workflowExecutionTerminatedEventAttributes"]["reason"] == "cli says stop"

    # Terminating a closed workflow is an error.
    again = await temporal(server, "workflow", "terminate", "-w", wf_id, "--reason", "again")
    assert again.returncode != 0, again.describe()


async def test_cluster_health(server):
    # The CLI asks the health service with gzip, as it asks every other service.
    res = await temporal(server, "operator", "cluster", "health")
    assert res.returncode == 0, res.describe()
    assert res.stdout.strip() == "SERVING", res.describe()


async def test_cluster_describe(server):
    res = await temporal(server, "operator", "cluster", "describe", "-o", "json")
    info = res.json()
    assert info["clusterName"] == "active"
    assert info["serverVersion"] == "1.32.0"
    assert info["historyShardCount"] > 0
    assert info["persistenceStore"] in ("sqlite", "postgres12", "mysql8", "memory")
    # Visibility records live in the same store.
    assert info["visibilityStore"] == info["persistenceStore"]
    assert "temporal-cli" in info["supportedClients"]
    # The id is the store's: the same on every call.
    again = (await temporal(server, "operator", "cluster", "describe", "-o", "json")).json()
    assert len(info["clusterId"]) == 36 and again["clusterId"] == info["clusterId"]


async def test_workflow_list_and_count(server, client: Client):
    # Listed the moment the starts return: no waiting for visibility to catch up.
    tq = unique("cli-list")
    ids = [f"{tq}-{i}" for i in range(3)]
    for wf_id in ids:
        res = await temporal(server, "workflow", "start", "--type", "WaitForeverWorkflow",
                             "--task-queue", tq, "--workflow-id", wf_id)
        assert res.returncode == 0, res.describe()
    res = await temporal(server, "workflow", "terminate", "-w", ids[0], "--reason", "listed")
    assert res.returncode == 0, res.describe()

    query = f"TaskQueue = '{tq}'"
    listed = (await temporal(server, "workflow", "list", "--query", query, "-o", "json")).json()
    assert [w["execution"]["workflowId"] for w in listed] == [ids[2], ids[1], ids[0]]
    assert listed[2]["status"] == "WORKFLOW_EXECUTION_STATUS_TERMINATED"
    assert listed[0]["type"]["name"] == "WaitForeverWorkflow"
    # Pages of one, cut at two.
    paged = (await temporal(server, "workflow", "list", "--query", query, "--page-size", "1",
                            "--limit", "2", "-o", "json")).json()
    assert [w["execution"]["workflowId"] for w in paged] == [ids[2], ids[1]]

    count = (await temporal(server, "workflow", "count", "--query", query, "-o", "json")).json()
    assert int(count["count"]) == 3
    grouped = (await temporal(server, "workflow", "count", "--query",
                              f"{query} GROUP BY ExecutionStatus", "-o", "json")).json()
    assert sorted((g["groupValues"][0], int(g["count"])) for g in grouped["groups"]) == \
        [("Running", 2), ("Terminated", 1)]

    bad = await temporal(server, "workflow", "list", "--query", "NoSuchAttribute = 1")
    assert bad.returncode != 0
    assert "invalid search attribute: NoSuchAttribute" in bad.stderr, bad.describe()
    for wf_id in ids[1:]:
        await temporal(server, "workflow", "terminate", "-w", wf_id, "--reason", "cleanup")
