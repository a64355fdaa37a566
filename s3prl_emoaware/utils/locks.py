"""One writer per output folder or cache: a lock file held with ``flock``.

``FOLDER/.s3prl_emoaware.lock`` holds the writer's pid and host while it runs. A second
process that wants to write the same folder refuses in one line (:class:`FolderLockedError`,
naming the folder and the holder's pid). The kernel drops an ``flock`` when its process dies,
``kill -9`` included, so a lock left by a dead process is simply taken over: the next writer
logs whose lock it was and removes that process's temporary files (``.*.tmp`` of the atomic
writers, in the folder and one level below), which nothing reads.

A folder copied with hard links (``cp -al``, a cheap way to branch a study) shares its lock file
with the original, and ``flock`` locks the file, not the path: the copy would be locked whenever
the original is. The writer that takes such a lock gives its folder a lock file of its own; a
refusal while the shared file is held elsewhere says so.

A run that made the folder and wrote nothing in it (refused after taking the lock) removes it
again. Under ``torchrun`` only rank 0 writes the output folder, so ``rank_zero_only`` locks there only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import logging
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from .atomic import ensure_writable_dir
from .errors import UserFacingError

logger = logging.getLogger(__name__)

__all__ = [
    "FolderLock",
    "FolderLockedError",
    "folder_lock",
    "locks_folder",
    "lock_holder",
    "process_running",
    "LOCK_NAME",
]

LOCK_NAME = ".s3prl_emoaware.lock"


class FolderLockedError(UserFacingError):
    """Another running process writes the same folder."""


class FolderLock:
    """An exclusive, non-blocking lock on ``folder`` (see the module docstring)."""

    def __init__(self, folder, what: str = "output folder"):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self._fd: Optional[int] = None
        self._created = False

    def acquire(self, orphan_wait_s: float = 20.0) -> "FolderLock":
        """Take the lock or raise :class:`FolderLockedError`. A holder whose recorded process is
        dead is a child it forked (a DataLoader worker of a killed trainer shares the lock until it
        notices, within seconds): waited for up to ``orphan_wait_s``."""
        self._created = not self.folder.exists()
        ensure_writable_dir(self.folder)
        fd = self._open()
        deadline = time.monotonic() + orphan_wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = os.pread(fd, 200, 0).decode(errors="replace").split()
                if err.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    os.close(fd)
                    raise
                if holder and _dead(holder) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                links = os.fstat(fd).st_nlink
                os.close(fd)
                shared = (
                    f"; its lock file is a hard link shared with {links - 1} other path(s) (a copy made with "
                    f"`cp -al`?), so the holder may be writing the other copy: if nothing writes this folder, "
                    f"delete {self.path}"
                    if links > 1
                    else ""
                )
                raise FolderLockedError(
                    f"{self.folder}: {self.what} is in use by {_who(holder)} (lock {LOCK_NAME}); "
                    f"wait for it to finish or write to another folder{shared}"
                ) from None
            if _same_file(fd, self.path):
                break
            # the file was replaced after we opened it (a writer gave its copy a lock of its own): retry on the new one
            os.close(fd)
            fd = self._open()
        if os.fstat(fd).st_nlink > 1:
            fd = self._own_lock_file(fd)
        previous = os.pread(fd, 200, 0).decode(errors="replace").split()
        if previous and previous[0] != str(os.getpid()):
            left = self._remove_temporaries()
            logger.info(
                "%s: took over the lock of pid %s, which is no longer running%s",
                self.folder,
                previous[0],
                f" (removed {left} temporary file(s) it left)" if left else "",
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def _own_lock_file(self, shared_fd: int) -> int:
        """Replace a lock file shared through hard links (held by us on ``shared_fd``) with one of this
        folder's own, held, and return its descriptor; the other paths keep the old file, unlocked."""
        links = os.fstat(shared_fd).st_nlink - 1
        tmp = self.folder / f".{LOCK_NAME}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file nobody else has opened
        os.pwrite(fd, os.pread(shared_fd, 200, 0), 0)  # the holder record, for the take-over log below
        os.replace(tmp, self.path)
        fcntl.flock(shared_fd, fcntl.LOCK_UN)
        os.close(shared_fd)
        logger.info(
            "%s: its lock file was a hard link shared with %d other path(s) (a copy made with `cp -al`?); "
            "it now has one of its own",
            self.folder,
            links,
        )
        return fd

    def _remove_temporaries(self) -> int:
        n = 0
        for pattern in (".*.tmp", "*/.*.tmp"):
            for tmp in self.folder.glob(pattern):
                if tmp.is_file():
                    tmp.unlink(missing_ok=True)
                    n += 1
        return n

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)  # empty: a released lock, not a dead holder's
        if self._created and [p.name for p in self.folder.iterdir()] == [LOCK_NAME]:
            self.path.unlink(missing_ok=True)  # a run refused before writing anything leaves no folder
            with contextlib.suppress(OSError):
                self.folder.rmdir()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


def lock_holder(folder) -> Optional[int]:
    """The pid of the process holding ``folder``'s lock now, or None (no lock, or not held)."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # held: read who holds it
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            return int(holder[0]) if holder and holder[0].isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open on ``fd``."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (now.st_dev, now.st_ino)


def process_running(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _dead(holder) -> bool:
    """Whether the recorded holder ``[pid, host]`` is a process of this host that no longer runs."""
    if len(holder) > 1 and holder[1] != socket.gethostname():
        return False
    try:
        return not process_running(int(holder[0]))
    except ValueError:
        return False


def _who(holder) -> str:
    if not holder:
        return "another process"
    who = f"pid {holder[0]}" + (f" on {holder[1]}" if len(holder) > 1 else "")
    return who + (" (dead; a process it started still holds the lock)" if _dead(holder) else "")


@contextlib.contextmanager
def folder_lock(folder, what: str = "output folder", rank_zero_only: bool = False) -> Iterator[Optional[FolderLock]]:
    """Hold :class:`FolderLock` on ``folder`` for the block (only on rank 0 with ``rank_zero_only``)."""
    if rank_zero_only and os.environ.get("RANK", "0") != "0":
        yield None
        return
    lock = FolderLock(folder, what).acquire()
    try:
        yield lock
    finally:
        lock.release()


def locks_folder(argument: str, what: str, rank_zero_only: bool = False) -> Callable:
    """Decorator: hold :func:`folder_lock` on the function's ``argument`` (a folder) while it runs."""

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            folder = signature.bind(*args, **kwargs).arguments[argument]
            with folder_lock(folder, what, rank_zero_only):
                return fn(*args, **kwargs)

        return wrapper

    return decorate
