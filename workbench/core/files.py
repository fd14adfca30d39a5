"""How the workbench writes: atomically, readable by the other users of a shared folder, and one run per folder.

``write_atomic`` writes a temporary file beside the destination and renames it, so a reader never sees half a
file; ``tempfile.mkstemp`` creates it 0600, so it is opened up to 0644 (0755 for folders, ``readable``)
before it takes the real name. ``locked(out)`` holds ``out/.workbench.lock`` (process id and host) for the length
of a run: a second run into the same folder is refused while the first lives, and the lock of a process that
died (kill -9) is reported and taken over. A lock written on another host (a shared network folder) is never
judged by a process id of this one: it refuses, naming the host and the file to delete if that run has ended.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import time
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


def _holder(lock: Path) -> tuple[int | None, str, str]:
    """(pid, host, text) of a lock file; pid None when it does not hold ``PID HOST``."""
    try:
        text = lock.read_text()
    except OSError:
        return None, "", ""
    pid, _, host = text.strip().partition(" ")
    return (int(pid) if pid.isdigit() else None), host.strip(), text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _claim(lock: Path, mine: str) -> bool:
    """Create ``lock`` holding ``mine``; False when it exists already."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(mine)
    return True


def take_over_stale(lock: Path, stale: str, mine: str) -> bool:
    """Replace the stale lock holding ``stale`` by ours. It is moved aside first, and put back if what was moved
    is not what we judged stale (another run took it over in between); False when we lost that race."""
    aside = lock.with_name(f"{LOCK}-stale-{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return _claim(lock, mine)
    moved = aside.read_text()
    if moved != stale:
        with contextlib.suppress(OSError):
            os.link(aside, lock)
    os.remove(aside)
    return moved == stale and _claim(lock, mine)


@contextlib.contextmanager
def locked(out: str | Path, flag: str = "--out"):
    """Hold ``out/.workbench.lock`` (``PID HOST``) while the block runs. A live holder on this host refuses with
    BadInput; so do a holder on another host (whose process this machine cannot see) and a lock file that does
    not hold ``PID HOST``, each naming the file to delete once that run has ended. The lock of a dead process
    on this host is reported on stderr and taken over."""
    out = Path(out)
    lock = out / LOCK
    here = socket.gethostname()
    mine = f"{os.getpid()} {here}\n"
    if not _claim(lock, mine):
        pid, host, text = _holder(lock)
        if pid is None:  # perhaps created this instant and not yet written: look once more
            time.sleep(0.2)
            pid, host, text = _holder(lock)
        where = f"{flag} {str(out)!r}"
        if pid is None:
            raise BadInput(f"{where} has a lock file {lock} holding {text[:40]!r}, not 'PID HOST'; if no run is "
                           "using the folder, delete the lock file")
        if host and host != here:
            raise BadInput(f"{where} is locked by process {pid} on host {host!r} ({lock}), which this machine "
                           f"cannot check; wait for that run, or if it has ended delete {lock}")
        if _alive(pid):
            raise BadInput(f"{where} is in use by process {pid} ({lock}); wait for it to finish or choose another "
                           f"folder (if process {pid} is not a workbench run, delete {lock})")
        print(f"note: {lock} was left by process {pid}, which is no longer running; taking it over",
              file=sys.stderr)
        if not take_over_stale(lock, text, mine):
            raise BadInput(f"{where} was just taken by another run ({lock}); wait for it or choose another folder")
    try:
        yield out
    finally:
        if _holder(lock)[0] == os.getpid():
            with contextlib.suppress(OSError):
                os.remove(lock)
