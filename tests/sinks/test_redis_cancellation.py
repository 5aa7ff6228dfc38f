"""The Redis client must let a task be cancelled mid-command: the fleet's members, the sink's pumps and the
reader are stopped by cancelling their tasks (SIGTERM does that). redis-py 8.0 and 8.2 swallow the
cancellation of about half of the commands it lands in, so a cancelled member went on renewing its leases
forever (the fleet test hung on it under load); pyproject pins ``redis<8`` for that, and this test keeps the
pin honest against whatever redis-py is installed."""

from __future__ import annotations

import asyncio
import random
from typing import Any

#: Cancellations, each at a random moment in a loop of commands, a script call and a pipeline.
ROUNDS = 150


async def test_a_task_cancelled_inside_a_redis_command_stops(redis_client: Any) -> None:
    script = redis_client.register_script("return redis.call('PEXPIRE', KEYS[1], ARGV[1])")
    await redis_client.set("k", "v")

    async def commands() -> None:
        while True:
            await redis_client.pexpire("k", 10_000)
            await script(keys=["k"], args=[10_000])
            pipe = redis_client.pipeline(transaction=False)
            await script(keys=["k"], args=[10_000], client=pipe)
            pipe.set("x", 1, px=1000)
            await pipe.execute()

    rng = random.Random(7)
    for i in range(ROUNDS):
        task = asyncio.create_task(commands())
        await asyncio.sleep(rng.random() * 0.005)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        if not done:  # the cancellation was swallowed: the loop goes on
            for _ in range(50):  # leave nothing running (each cancel may be swallowed again)
                task.cancel()
                if (await asyncio.wait([task], timeout=0.2))[0]:
                    break
            raise AssertionError(f"redis-py swallowed a cancellation (round {i + 1} of {ROUNDS})")
        assert task.cancelled() or task.exception() is None
    assert await redis_client.get("k") == b"v"  # and the client still answers
