"""The server class `onair serve` runs: objects built at startup leave the collector's sight."""

from __future__ import annotations

import asyncio
import gc

import uvicorn

from onair.server_process import OnairServer


async def test_startup_freezes_what_was_built_so_far(free_port: int) -> None:
    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert scope["type"] == "lifespan"  # no requests in this test

    server = OnairServer(uvicorn.Config(app, host="127.0.0.1", port=free_port,
                                        lifespan="off", log_level="warning"))
    assert gc.get_freeze_count() == 0
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        frozen = gc.get_freeze_count()
        # Everything alive at startup: at least this test's modules, far more than a few objects.
        assert frozen > 10_000
    finally:
        server.should_exit = True
        await task
        gc.unfreeze()
