# Incident: an asyncio consumer waits for a queue to fill by "yielding to the loop" with
# `await asyncio.sleep(0)` in a while-loop. The queue never fills, so the event loop never
# sleeps: each iteration calls epoll_wait with a zero timeout that returns nothing, interpreter
# and asyncio frames dominate the profile, and no bytes move.
import asyncio


async def wait_for_work(pending: list) -> None:
    while not pending:
        await asyncio.sleep(0)


asyncio.run(wait_for_work([]))
