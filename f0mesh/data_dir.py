"""The data directory is private to the node's user: the key, the token, the store and its logs.

``f0mesh up`` runs with umask 077, so what it creates is 0600 (files) and 0700 (directories);
a data dir from an older version, or one made by hand, is tightened once at start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from f0mesh.errors import ConfigError

log = logging.getLogger("f0mesh.data_dir")

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
