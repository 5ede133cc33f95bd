"""The data directory: checked before use, private to the node's user, and held by one ``f0mesh up``.

``f0mesh up`` runs with umask 077, so what it creates is 0600 (files) and 0700 (directories); a data
dir from an older version, or one made by hand, is tightened once at start.

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
import logging
import os
import stat
from pathlib import Path

from f0mesh.errors import ConfigError

log = logging.getLogger("f0mesh.datadir")

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


PRIVATE_UMASK = 0o077
_SHOWN = 5


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists, so that whatever opens it next (and
    SQLite's -wal and -shm, which copy the database's mode) does not make it readable to others."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_private(data_dir: Path) -> None:
    """For ``f0mesh up``: this process creates private files from now on, and ``data_dir`` is private."""
    os.umask(PRIVATE_UMASK)
    secure_data_dir(data_dir)


def secure_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` 0700, or take group and other access away from it and from everything
    directly in it (the owner's bits are left alone); one log line says what changed."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        entries = sorted(data_dir.iterdir())
    except OSError as exc:
        raise ConfigError(f"data dir {data_dir}: {exc.strerror or exc}") from exc
    changed: list[str] = []
    for path in (data_dir, *entries):
        try:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode) or not mode & 0o077:
                continue  # already private, or a symlink (whose target is not ours to change)
            os.chmod(path, stat.S_IMODE(mode) & ~0o077)
        except OSError as exc:
            log.warning("cannot make %s private: %s", path, exc.strerror or exc)
            continue
        changed.append("." if path == data_dir else path.name)
    if changed:
        more = len(changed) - _SHOWN
        names = ", ".join(changed[:_SHOWN]) + (f" and {more} more" if more > 0 else "")
        log.warning("data dir %s: removed group and other access from %s", data_dir, names)
