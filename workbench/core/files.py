"""How the workbench writes: atomically, readable by the other users of a shared folder, and one run per folder.

``write_atomic`` writes a temporary file beside the destination and renames it, so a reader never sees half a
file; ``tempfile.mkstemp`` creates it 0600, so it is opened up to 0644 (0755 for folders, ``readable``)
before it takes the real name. ``locked(out)`` holds ``out/.workbench.lock`` (the process id) for the length
of a run: a second run into the same folder is refused while the first lives, and the lock of a process that
died (kill -9) is reported and taken over.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from pathlib import Path

from workbench.core.validate import LOCK, BadInput

FILE_MODE, DIR_MODE = 0o644, 0o755


def readable(path: str | Path) -> Path:
    """Give ``path`` (a file, or a folder and everything in it) ordinary permissions."""
    path = Path(path)
    if path.is_dir():
        for p in [path, *path.rglob("*")]:
            os.chmod(p, DIR_MODE if p.is_dir() else FILE_MODE)
    else:
        os.chmod(path, FILE_MODE)
    return path


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename; the folder is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def _holder(lock: Path) -> tuple[int | None, str]:
    """(pid, host) written in a lock file; (None, "") when it cannot be read."""
    try:
        pid, _, host = lock.read_text().strip().partition(" ")
        return int(pid), host
    except (OSError, ValueError):
        return None, ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextlib.contextmanager
def locked(out: str | Path, flag: str = "--out"):
    """Hold ``out/.workbench.lock`` while the block runs. A live holder (this host) refuses with BadInput;
    a dead one's lock is reported on stderr and taken over."""
    out = Path(out)
    lock = out / LOCK
    mine = f"{os.getpid()} {socket.gethostname()}\n"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        with os.fdopen(fd, "w") as f:
            f.write(mine)
    except FileExistsError:
        pid, host = _holder(lock)
        if pid is not None and (host != socket.gethostname() or _alive(pid)):
            raise BadInput(f"{flag} {str(out)!r} is in use by process {pid}{' on ' + host if host else ''} "
                           f"({lock}); wait for it to finish or choose another folder") from None
        print(f"note: {lock} was left by process {pid}, which is no longer running; taking it over",
              file=sys.stderr)
        write_atomic(lock, mine)
    try:
        yield out
    finally:
        if _holder(lock)[0] == os.getpid():
            with contextlib.suppress(OSError):
                os.remove(lock)
