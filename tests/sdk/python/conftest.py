"""Fixtures: the server under test (SUNDIAL_TARGET=sundial|reference), clients, helpers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from temporalio.client import Client

import harness


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """Server logs and database files. A fresh directory per session, so no state carries over."""
    explicit = os.environ.get("SUNDIAL_TEST_LOG_DIR")
    if explicit:
        path = Path(explicit).resolve() / f"session-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        path.mkdir(parents=True, exist_ok=False)
    else:
        path = tmp_path_factory.mktemp("servers")
    print(f"\n[sundial-tests] server logs and db files: {path}")
    return path


@pytest.fixture(scope="session", autouse=True)
def database_server():
    """The private PostgreSQL or MariaDB server Sundial persists to (SUNDIAL_STORE), if any."""
    kind = harness.store()
    if kind == "sqlite" or harness.target() != "sundial":
        yield None
        return
    harness.DATABASE = harness.DatabaseServer(kind)
    print(f"\n[sundial-tests] sundial persists to {kind}: {harness.DATABASE.url}")
    yield harness.DATABASE
    harness.DATABASE.stop()
    harness.DATABASE = None


@pytest.fixture(scope="session")
def server(workdir, database_server):
    """The server under test, shared by the whole session."""
    kind = harness.target()
    srv = harness.ServerProcess(kind, workdir, f"{kind}-main")
    srv.start()
    print(f"\n[sundial-tests] server under test: {srv} (log: {srv.log_path})")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def reference_server(workdir):
    """A reference Temporal dev server (always the real one), for differential tests."""
    srv = harness.ServerProcess("reference", workdir, "reference-oracle")
    srv.start()
    print(f"\n[sundial-tests] reference server: {srv} (log: {srv.log_path})")
    yield srv
    srv.stop()


@pytest.fixture
async def client(server) -> Client:
    return await Client.connect(server.address, namespace="default")


def pytest_report_header(config):
    return [f"sundial target: {harness.target()}, store: {harness.store()}"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the log tail of every live server process to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in list(harness.LIVE_SERVERS):
            report.sections.append(
                (f"log tail of {srv.kind} server {srv.name} ({srv.log_path})", srv.log_tail()))
