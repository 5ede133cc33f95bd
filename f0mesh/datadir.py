"""The data directory: checked before use, and held by one ``f0mesh up`` at a time.

Two nodes on one directory would share a PeerId and a SQLite file: peers see one identity at two
addresses (glare, links flapping) and the store gets two writers. ``up`` therefore holds an
exclusive ``flock`` on ``DIR/lock`` for its whole life; the kernel drops it when the process ends,
however it ends, so a crash leaves no stale lock. The file holds the holder's PID for the message
the next ``up`` prints. ``id`` and the client commands only read the directory and take no lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from f0mesh.errors import ConfigError

LOCK_NAME = "lock"
PID_MAX_CHARS = 32


def prepare(path: Path, flag: str = "--data-dir", *, writable: bool = True) -> Path:
    """The directory, created if missing; a file, or (when ``writable``) a directory this user
    cannot write, is a ConfigError naming the next step, before any key or store is touched."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a directory: give a directory (created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{flag} {path}: cannot create it ({exc.strerror}): create it or give another directory"
        ) from exc
    if not writable:
        return path
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        raise ConfigError(f"{flag} {path} is on a read-only file system: give a directory on a writable one")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{flag} {path} is not writable by this user (uid {os.getuid()}): "
            "fix its owner or mode, or give another directory"
        )
    return path


class DataDirLock:
    """An exclusive lock on ``DIR/lock``, held until ``release`` or the end of the process."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"--data-dir {self.path.parent}: cannot open {self.path.name} ({exc.strerror}): "
                "fix the directory's owner or mode"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigError(f"cannot lock {self.path}: {exc.strerror}") from exc
            who = f"process {holder}" if holder else "another process"
            raise ConfigError(
                f"--data-dir {self.path.parent} is in use by {who} (f0mesh up): "
                "stop it first, or give this node a directory of its own"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    """The PID the holder wrote, if it has written one yet (it locks first, then writes)."""
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, PID_MAX_CHARS, 0).decode("ascii").strip()
        return int(text) if text else None
    return None
