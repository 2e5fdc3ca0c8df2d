"""A worker in its own process (so a test can kill -9 it): polls TASK_QUEUE with the suite's
workflows and a short sticky schedule-to-start timeout, until killed.

Usage: python sticky_worker.py ADDRESS TASK_QUEUE STICKY_TIMEOUT_SECONDS
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from sundial_workflows import ALL_ACTIVITIES, ALL_WORKFLOWS


async def main(address: str, task_queue: str, sticky_timeout: float) -> None:
    client = await Client.connect(address, namespace="default")
    worker = Worker(client, task_queue=task_queue, workflows=ALL_WORKFLOWS,
                    activities=ALL_ACTIVITIES,
                    sticky_queue_schedule_to_start_timeout=timedelta(seconds=sticky_timeout))
    print("ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
