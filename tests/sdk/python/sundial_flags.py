"""Process-wide switches that tests flip while a worker runs.

Workflows import this module with `workflow.unsafe.imports_passed_through()`, so the sandboxed
workflow code and the test share one module object (and so one set).
"""

from __future__ import annotations

from typing import Set

# Workflow ids whose workflow code is allowed to get past its deliberate workflow-task failure.
ALLOWED_TO_PASS: Set[str] = set()


def allow(workflow_id: str) -> None:
    ALLOWED_TO_PASS.add(workflow_id)


def is_allowed(workflow_id: str) -> bool:
    return workflow_id in ALLOWED_TO_PASS
