"""`sluice completion bash|zsh`: the scripts, loaded into the real shells, complete commands,
actions and files."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.helpers import Sluice

_BASH_COMPLETE = """
source "$1"
shift
line="sluice $*"
read -ra COMP_WORDS <<< "$line"
[[ "$line" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE=$line
COMP_POINT=${#line}
_shtab_sluice
printf '%s\\n' "${COMPREPLY[@]}"
"""


def _script(sluice: Sluice, shell: str, path: Path) -> Path:
    ran = sluice("completion", shell)
    assert ran.code == 0, ran.err
    path.write_text(ran.out)
    return path


def _bash(script: Path, typed: str, cwd: Path) -> list[str]:
    # `typed` is what follows `sluice ` on the line; a trailing space starts a new word.
    ran = subprocess.run(
        ["bash", "-c", _BASH_COMPLETE, "complete", str(script), *typed.split(" ")],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return sorted(ran.stdout.split())


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_actions_and_files(sluice: Sluice, tmp_path: Path) -> None:
    script = _script(sluice, "bash", tmp_path / "sluice.bash")
    (tmp_path / "hello.yaml").write_text("name: hello\n")
    assert _bash(script, "ru", tmp_path) == ["runs"]
    assert _bash(script, "api-key ", tmp_path) == ["create", "list", "revoke"]
    assert _bash(script, "runs ", tmp_path) == [
        "cancel",
        "list",
        "replay",
        "resume",
        "retry",
        "show",
        "tail",
    ]
    assert _bash(script, "flow deploy hel", tmp_path) == ["hello.yaml"]
    assert "--full" in _bash(script, "flow show --", tmp_path)


def _read_until(fd: int, wanted: bytes, within: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + within
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


@pytest.mark.skipif(
    shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)"
)
def test_zsh_completes_actions_with_their_help(sluice: Sluice, tmp_path: Path) -> None:
    functions = tmp_path / "functions"
    functions.mkdir()
    _script(sluice, "zsh", functions / "_sluice")
    env = {"PATH": os.environ["PATH"], "TERM": "dumb", "HOME": str(tmp_path)}
    pid, fd = pty.fork()
    if pid == 0:  # the child: an interactive zsh without any user configuration
        os.execvpe("zsh", ["zsh", "-f", "-i"], env)
    try:
        setup = f"fpath=({functions} $fpath); autoload -U compinit; compinit -u; echo READY\n"
        os.write(fd, setup.encode())
        assert b"READY\r\n" in _read_until(fd, b"READY\r\n", 20)
        os.write(fd, b"sluice api-key \t")
        listed = _read_until(fd, b"revoke", 20).decode(errors="replace")
        assert "create  -- create another API key for a project" in listed
        assert "revoke  -- revoke a key: it is refused from then on" in listed
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def test_an_unknown_shell_is_a_usage_error() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "app.cli", "completion", "fish"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ran.returncode == 2
    assert "invalid choice: 'fish'" in ran.stderr
