"""What tests share to run ftlab as a user does: the repository and data folders, the TINY overrides
that make any run a seconds-long smoke run, and `run_cli` (the real CLI, forked from a process that
has imported it: cli_zygote.py). Tests import these from here (`from support.cli import ...`);
tests/conftest.py holds the fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("FTLAB_DATA_DIR", REPO.parent / "shared" / "data")).resolve()

# overrides that make any run a seconds-long smoke run
TINY = [
    "threads=1",  # a shared 2-core box: a second torch thread waits on the busy core
    "trainer.precision=32-true",  # the same numbers on every machine (auto picks bf16 where native: test_precision.py)
    "model=tiny_bert",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "data.batch_size=8",
    "data.eval_batch_size=16",
]


class _ForkedCli:
    """tests/support/cli_zygote.py, started at the first `run_cli` of this process (an xdist worker)."""

    def __init__(self):
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="ftlab-cli-")
        self.socket = os.path.join(self.dir, "cli.sock")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "support" / "cli_zygote.py"), self.socket],
                                     cwd=REPO, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     text=True)
        ready, _, env = self.proc.stdout.readline().partition(" ")
        if ready != "ready":
            raise RuntimeError(f"tests/support/cli_zygote.py did not start (exit {self.proc.wait()})")
        import json

        import atexit

        atexit.register(self.close)  # also when the session ends without its fixtures' teardown
        started = json.loads(env)
        self.env, self.set_by_imports = started["env"], started["set_by_imports"]  # (ftlab.cli: THP_MEM_ALLOC_ENABLE)

    def serves(self, env: dict) -> bool:
        from support.cli_zygote import FORKABLE_ENV, IMPORT_TIME_ENV

        changed = {k for k in set(env) | set(self.env) if env.get(k) != self.env.get(k)}
        changed -= {k for k, v in self.set_by_imports.items() if env.get(k, v) == v}  # set again in the child
        return not any(k.startswith(IMPORT_TIME_ENV) and not k.startswith(FORKABLE_ENV) for k in changed)

    def run(self, args: list[str], cwd: Path, env: dict, timeout: float) -> dict:
        import json
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout + 60)
            conn.connect(self.socket)
            conn.sendall(json.dumps({"args": args, "cwd": str(cwd), "env": env, "timeout": timeout}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("the forked CLI server closed the connection without an answer")
                data += chunk
        return json.loads(data)

    def close(self) -> None:
        import shutil

        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)




_FORKED: list[_ForkedCli] = []


def stop_forked_cli() -> None:
    """Stop this process's forked-CLI server, if it started one."""
    for server in _FORKED:
        if server is not None:
            server.close()


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None, fresh: bool = False):
    """Run `python -m ftlab` as a user would; returns the CompletedProcess. The command is forked
    from a process that has imported it already (tests/support/cli_zygote.py: the same command,
    without its seconds of imports), unless `fresh`, FTLAB_TEST_FRESH_CLI=1, or an environment that
    changes what the imports read asks for a new interpreter."""
    full_env = {**os.environ, **(env or {})}
    command = [sys.executable, "-m", "ftlab", *args]
    fork = not fresh and os.environ.get("FTLAB_TEST_FRESH_CLI") != "1"
    if fork and not _FORKED:
        try:
            _FORKED.append(_ForkedCli())
        except (OSError, RuntimeError) as err:  # no server: every command in a new interpreter, as before
            print(f"tests/support/cli_zygote.py: {err}; the CLI runs in new interpreters", file=sys.stderr)
            _FORKED.append(None)
    if not fork or _FORKED[0] is None or not _FORKED[0].serves(full_env):
        return subprocess.run(command, cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    reply = _FORKED[0].run(list(args), cwd or REPO, full_env, timeout)
    if reply["timed_out"]:
        raise subprocess.TimeoutExpired(command, timeout, output=reply["stdout"], stderr=reply["stderr"])
    return subprocess.CompletedProcess(command, reply["rc"], reply["stdout"], reply["stderr"])
