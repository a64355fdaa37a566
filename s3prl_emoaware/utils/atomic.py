"""Atomic file writes: write next to the target, fsync, then rename.

A killed job must never leave a half-written file behind under the final name, so every
result file of the package goes through these helpers: the bytes go to a temporary file in
the target's folder (``.<name>.<random>.tmp``, a name no reader looks for), which is flushed
to disk (``fsync``) and only then renamed onto the target, so after a crash the target is
either the old file or the complete new one. The folder is not fsynced: a crash may lose the
rename, never the content, and that halves the cost (7 ms -> 4 ms a write, measured here; it
counts for caches of 100k entries). A full disk (or quota) while writing is one
:class:`DiskFullError` line naming the target; the temporary file is removed and the previous
target, if any, is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple, Union

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "ensure_writable_dir",
    "atomic_torch_saves",
    "OutputDirError",
    "DiskFullError",
    "is_disk_full",
]

PathLike = Union[str, os.PathLike]

_FULL = (errno.ENOSPC, errno.EDQUOT)
_LOW_SPACE_BYTES = 1 << 20  # a writer that hides the errno (torch's C++ zip writer) is judged by free space


class OutputDirError(OSError):
    """An output folder cannot be created or written to."""


class DiskFullError(OutputDirError):
    """No space left (or quota exceeded) while writing a file; nothing was left under its name."""


def ensure_writable_dir(path: PathLike) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.errno in _FULL:
            raise DiskFullError(f"{path}: cannot create output folder: no space left on device") from None
        raise OutputDirError(f"{path}: cannot create output folder ({err.strerror or err})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputDirError(f"{path}: output folder is not writable")
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(err: BaseException, folder: PathLike) -> bool:
    """Whether ``err`` (raised while writing into ``folder``) means a full disk or quota: ENOSPC or EDQUOT
    in its chain, or, for a writer that hides the errno, less than 1 MiB left in ``folder``."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL:
            return True
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, (OSError, RuntimeError)):
        try:
            stats = os.statvfs(folder)
        except OSError:
            return False
        return stats.f_bavail * stats.f_frsize < _LOW_SPACE_BYTES
    return False


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Tuple[int, Path]]:
    """A new temporary file beside ``target``, open: yields its descriptor and path for the body to fill
    (and fsync); when the body returns, the file is closed and renamed onto ``target``. On any error (the
    body's, a full disk's, a signal's) it is removed and ``target`` keeps its previous content; a full disk
    is raised as :class:`DiskFullError`."""
    tmp_path: Optional[Path] = None
    fd: Optional[int] = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        tmp_path = Path(tmp)
        yield fd, tmp_path
        os.close(fd)
        fd = None
        os.replace(tmp_path, target)
        tmp_path = None
    except Exception as err:
        if is_disk_full(err, target.parent):
            raise DiskFullError(
                f"{target}: no space left on device while writing it (nothing was written; free some space and re-run)"
            ) from None
        raise
    finally:
        if fd is not None:
            os.close(fd)
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename it onto ``target``.

    On any error (the body's, a full disk's, a signal's) the temporary file is removed and
    ``target`` keeps its previous content; a full disk is raised as :class:`DiskFullError`.
    """
    with _replacing(Path(target)) as (_, tmp_path):
        yield tmp_path
        _fsync(tmp_path)  # by path: the body may have written a new file under it


def atomic_write_bytes(target: PathLike, data: bytes) -> None:
    """:func:`atomic_path` for bytes in memory, with one file open instead of three (the temporary file's
    creation, the writer's open, fsync's): creating and opening a file took 0.4 ms on the overlay
    filesystem of these machines, which a cache of one small file per clip pays per clip."""
    with _replacing(Path(target)) as (fd, _):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)


def atomic_write_text(target: PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def atomic_write_json(target: PathLike, obj: Any) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, target: PathLike) -> None:
    import torch

    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:  # written through Python, so a full disk's errno reaches us
            torch.save(obj, f)


@contextlib.contextmanager
def atomic_torch_saves() -> Iterator[None]:
    """Within the block, ``torch.save(obj, path)`` from any code (s3prl's runner writes its
    ``states-*.ckpt`` and ``dev-best.ckpt`` with it) goes through :func:`atomic_path`, so a killed
    run never leaves a truncated checkpoint under a name that ``-e`` would load; saves to file
    objects are unchanged."""
    import torch

    original = torch.save

    def save(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return original(obj, f, *args, **kwargs)
        with atomic_path(f) as tmp:
            with open(tmp, "wb") as handle:
                original(obj, handle, *args, **kwargs)

    torch.save = save
    try:
        yield
    finally:
        torch.save = original
