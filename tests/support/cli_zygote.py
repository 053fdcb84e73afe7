"""The real `ftlab` command, started from a process that has already imported it.

Most of a CLI start is imports (torch, Lightning, transformers, peft: ~6 s of CPU here, 10-25 s on
a loaded 2-core box), and the suite starts the CLI a few hundred times. This server imports ftlab's
command once; each request forks a child that becomes `python -m ftlab <args>` in every way a test
can see: its argv, cwd, environment, sys.path (cwd first, then PYTHONPATH, as Python starts), fresh
random state, default signal handlers, stdout and stderr captured from its file descriptors (so
processes it starts, DDP workers included, write there too), `ftlab.cli.main()` run to its exit
code or signal. The import-time state is what any fresh process has after the same imports: the
server runs nothing but imports before it forks.

Requests come over a Unix socket (tests/support/cli.py `run_cli`), one connection each, so several
may run at once: the server forks a waiter per connection, and the waiter forks the command, waits
for it (killing its process group at the timeout) and sends back {rc, stdout, stderr, timed_out}.
A request whose environment differs from the server's in a variable read at start or import time
(`IMPORT_TIME_ENV`) cannot be served this way; support/cli.py runs those in a plain subprocess. Others
(FTLAB_*, SLURM_*, Lightning's PL_GLOBAL_SEED a test's in-process run leaves behind) are set in the child.

    python tests/support/cli_zygote.py <socket path>
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
import time

# variables read when the interpreter starts or a module is imported (Python's own, the hub's paths and
# modes, the thread pools', torch's): a request that changes one gets a new interpreter (conftest)
IMPORT_TIME_ENV = ("PYTHON", "HF_", "HUGGINGFACE", "TRANSFORMERS_", "DATASETS_", "TOKENIZERS_", "OMP_", "MKL_",
                   "KMP_", "OPENBLAS_", "PYTORCH_", "TORCH", "CUDA_", "NVIDIA_", "LD_", "MALLOC", "HOME", "TMPDIR",
                   "XDG_", "LANG", "LC_")
FORKABLE_ENV = ("PYTHONPATH",)  # read again by the child, as Python reads it at start


def _receive(conn: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return json.loads(data)


def _become_the_command(request: dict, out_fd: int, err_fd: int) -> None:
    """In the forked child: the process `python -m ftlab <args>` would be, then its exit."""
    os.setpgid(0, 0)  # the waiter kills the command and what it started, at a timeout
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [request["cwd"], *extra, *BASE_PATH]
    sys.argv = [MAIN_FILE, *request["args"]]
    import __main__
    import importlib.util
    import random

    import numpy

    __main__.__spec__ = importlib.util.find_spec("ftlab.__main__")  # Lightning re-runs `python -m <spec>` for DDP
    random.seed()
    numpy.random.seed()
    for key, value in IMPORT_ENV.items():  # what the imports set in os.environ (ftlab.cli: THP_MEM_ALLOC_ENABLE)
        os.environ.setdefault(key, value)
    code = 0
    try:
        from ftlab.cli import main

        main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, (int, type(None))):
            print(stop.code, file=sys.stderr)
    except KeyboardInterrupt:
        _finalize()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as Python ends on an unhandled Ctrl-C
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    _finalize()
    os._exit(code)


def _finalize() -> None:
    """Python's own exit: wait for non-daemon threads, run atexit functions, flush the streams."""
    import atexit
    import threading

    try:
        threading._shutdown()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass


def _serve(conn: socket.socket) -> None:
    """In the waiter: fork the command, wait for it, answer."""
    request = _receive(conn)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            conn.close()
            _become_the_command(request, out.fileno(), err.fileno())
        deadline = time.monotonic() + request["timeout"]
        timed_out, status = False, None
        while status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
            elif time.monotonic() > deadline:
                timed_out = True
                os.killpg(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
            else:
                time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        reply = {"rc": os.waitstatus_to_exitcode(status), "timed_out": timed_out,
                 "stdout": out.read().decode("utf-8", "replace"), "stderr": err.read().decode("utf-8", "replace")}
    conn.sendall(json.dumps(reply).encode() + b"\n")


# transformers loads a model family's code when a config first names it: the families of ftlab's configs
FAMILIES = ("bert", "distilbert", "roberta", "gemma", "gemma3", "llama", "qwen2", "gpt2", "mpnet")


def _import_what_runs_import() -> None:
    """Every ftlab module and the libraries' modules that runs load on first use (peft's tuners,
    bitsandbytes, datasets, the model families' code): the part of a run's start that is imports."""
    import importlib
    import pkgutil

    import ftlab

    names = [m.name for m in pkgutil.walk_packages(ftlab.__path__, "ftlab.") if m.name != "ftlab.__main__"]
    names += ["peft", "bitsandbytes", "datasets", "torchmetrics", "lightning.pytorch", "pandas"]
    names += [f"transformers.models.{f}.{part}_{f}" for f in FAMILIES for part in ("configuration", "modeling", "tokenization")]
    for name in names:  # a warm-up: what does not import here imports (or fails) in the command, as it would
        try:
            importlib.import_module(name)
        except Exception:
            pass


def main(path: str) -> None:
    before = dict(os.environ)
    import importlib.util

    import ftlab.cli  # noqa: F401  (the command first: it sets the environment torch reads)

    _import_what_runs_import()

    global BASE_PATH, MAIN_FILE, IMPORT_ENV
    IMPORT_ENV = {k: v for k, v in os.environ.items() if k not in before}
    here = os.path.dirname(os.path.abspath(__file__))
    BASE_PATH = [p for p in sys.path if p and os.path.abspath(p) != here]
    MAIN_FILE = importlib.util.find_spec("ftlab.__main__").origin  # argv[0] of `python -m ftlab`
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    print("ready " + json.dumps({"env": dict(os.environ), "set_by_imports": IMPORT_ENV}), flush=True)
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            server.close()
            try:
                _serve(conn)
            finally:
                os._exit(0)
        conn.close()


BASE_PATH: list[str] = []
MAIN_FILE = ""
IMPORT_ENV: dict[str, str] = {}

if __name__ == "__main__":
    main(sys.argv[1])
