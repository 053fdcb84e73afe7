"""Writes that are whole or absent: a half-written file must never sit under a name that says it is
whole (a checkpoint, `model/`, `export/`, the tokenization cache, results.json).

Each write goes to a temporary name in the same folder and is renamed into place; a write that
fails removes its temporary file and leaves the previous good one. A full disk is a user error that
names the folder, what was needed and what was free, found before writing where the size is known.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ftlab.errors import UserError

FIX = ("free space there, write the run elsewhere (hydra.run.dir=...), skip the saved model "
       "(save.model=false) or keep fewer checkpoints (callbacks.model_checkpoint.save_last=false)")


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


class OutOfSpace(UserError):
    def __init__(self, folder: Path | str, needed: int | None, what: str, fix: str = FIX):
        free = shutil.disk_usage(folder).free if Path(folder).exists() else 0
        need = f"{_size(needed)} needed, " if needed else ""
        super().__init__(f"no space left in {folder} for {what} ({need}{_size(free)} free)", fix)


def is_out_of_space(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def write_bytes(path: Path, data: bytes | memoryview, what: str) -> None:
    """`data` at `path`, whole, or an `OutOfSpace` naming the folder, the size and the free space."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(data) > shutil.disk_usage(path.parent).free:
        raise OutOfSpace(path.parent, len(data), what)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if is_out_of_space(err):
            raise OutOfSpace(path.parent, len(data), what) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def replaced_folder(path: Path, what: str):
    """Yield a temporary folder beside `path`; on success it becomes `path` (an earlier one is
    replaced only then); on any failure it is removed and `path` stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_out_of_space(err):
            raise OutOfSpace(path.parent, None, what) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, whole or absent: serialised first (so its size is known and
    checked against the free space), then written to a temporary name and renamed. Lightning's own
    writes in place: on a full disk it leaves a truncated file under a valid checkpoint's name."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes(Path(path), buffer.getbuffer(), f"checkpoint {Path(path).name}")
