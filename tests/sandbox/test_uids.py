from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.sandbox.helpers import processes_of
from worker.sandbox import uids


def test_blocks_of_different_workers_are_disjoint_and_below_2_to_the_31() -> None:
    blocks = [uids.block(pid) for pid in (1, 2, 4_194_303)]
    assert all(len(b) == uids.BLOCK for b in blocks)
    assert not set(blocks[0]) & set(blocks[1])
    assert blocks[-1][-1] == 2**31 - 1


def test_released_uids_go_to_the_back_and_exhaustion_is_explained() -> None:
    pool = uids.UidPool(range(10, 13))
    first = pool.acquire()
    pool.release(first)
    assert [pool.acquire() for _ in range(3)] == [11, 12, 10]
    with pytest.raises(RuntimeError, match="all 3 sandbox uids"):
        pool.acquire()


def start_sleepers(uid: int, count: int) -> list[subprocess.Popen[bytes]]:
    """Processes of `uid`, each in a session of its own (out of reach of a process group)."""
    return [
        subprocess.Popen(
            ["sleep", "60"], user=uid, group=uid, extra_groups=[], start_new_session=True
        )
        for _ in range(count)
    ]


def test_a_block_is_held_by_one_claimant_at_a_time(public_dir: Path) -> None:
    first, lock = uids.claim_block(7, lock_dir=str(public_dir))
    second, other = uids.claim_block(7, lock_dir=str(public_dir))
    assert (first, second) == (uids.block(7), uids.block(8))
    os.close(lock)
    again, lock = uids.claim_block(7, lock_dir=str(public_dir))
    assert again == first
    for fd in (lock, other):
        os.close(fd)


@pytest.mark.skipif(os.geteuid() != 0, reason="starting processes under another uid needs root")
async def test_clear_kills_every_process_of_a_uid_whatever_its_session(
    free_uids: range | None,
) -> None:
    assert free_uids is not None
    uid = free_uids[0]
    detached = start_sleepers(uid, 3)
    assert sorted(uids.live_processes(uid)) == sorted(p.pid for p in detached)
    assert await uids.clear(uid, 5)
    assert [p.wait() for p in detached] == [-9, -9, -9]
    assert processes_of(range(uid, uid + 1)) == []
