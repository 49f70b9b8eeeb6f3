"""Poll job status for the dashboard's async web handler."""

import asyncio
import time

import httpx


async def wait_for_job(client: httpx.AsyncClient, job_id: str, attempts: int = 30) -> dict:
    for _ in range(attempts):
        response = await client.get(f"/jobs/{job_id}")
        job = response.json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(1.0)
    raise TimeoutError(job_id)


async def wait_all(client: httpx.AsyncClient, ids: list[str]) -> list[dict]:
    return await asyncio.gather(*(wait_for_job(client, i) for i in ids))
