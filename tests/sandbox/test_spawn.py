"""A spawned child's processes: watched, terminated, released without a trace."""

from __future__ import annotations

import os

from tests.sandbox.helpers import descendants, open_fds, processes_of
from worker.sandbox.launch import Launcher
from worker.sandbox.spawn import spawn


async def test_a_terminated_child_reports_its_exit_once_and_leaves_nothing(
    launcher: Launcher, free_uids: range | None
) -> None:
    uid = None if free_uids is None else free_uids[0]
    before, fds = descendants(), open_fds()
    spawned = spawn(launcher, uid=uid)
    exits: list[int] = []
    spawned.watch(exits.append)
    assert spawned.pid in descendants()
    await spawned.terminate()
    assert spawned.returncode is not None
    assert exits == [spawned.returncode]
    assert spawned.gone
    assert descendants() == before
    if uid is not None:
        assert processes_of(range(uid, uid + 1)) == []
    spawned.release()
    pipes = spawned.pipes
    for fd in (pipes.request, pipes.reply, pipes.stdout, pipes.stderr):
        os.close(fd)
    assert open_fds() == fds
