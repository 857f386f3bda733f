"""GroupCommit: concurrent submissions share batches; each caller gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from onair.group_commit import GroupCommit


async def test_concurrent_items_share_batches_and_get_their_own_results() -> None:
    batches: list[list[int]] = []

    async def run(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        await asyncio.sleep(0.01)  # a transaction in flight: more requests queue meanwhile
        return [ValueError(i) if i % 5 == 0 else i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(run, max_batch=8)
    results = await asyncio.gather(*(group.submit(i) for i in range(1, 21)),
                                   return_exceptions=True)
    for i, result in zip(range(1, 21), results, strict=True):
        if i % 5 == 0:
            assert isinstance(result, ValueError) and result.args == (i,)
        else:
            assert result == i * 10
    assert sorted(i for batch in batches for i in batch) == list(range(1, 21))
    assert all(len(batch) <= 8 for batch in batches) and len(batches) < 20
    assert (group.batches, group.items) == (len(batches), 20)


async def test_a_failed_batch_fails_each_of_its_callers() -> None:
    async def run(items: list[int]) -> list[int | Exception]:
        raise RuntimeError("database down")

    group: GroupCommit[int, int] = GroupCommit(run, max_batch=4)
    results = await asyncio.gather(*(group.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    # The next submission starts a new batch.
    with pytest.raises(RuntimeError):
        await group.submit(9)
    await group.close()


async def test_a_caller_that_went_away_does_not_break_the_batch() -> None:
    release = asyncio.Event()

    async def run(items: list[int]) -> list[int | Exception]:
        await release.wait()
        return items

    group: GroupCommit[int, int] = GroupCommit(run, max_batch=4)
    gone = asyncio.create_task(group.submit(1))
    stays = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await stays == 2
    await group.close()
