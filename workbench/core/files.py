"""How the workbench writes: atomically, readable by the other users of a shared folder, and one run per folder.

``write_atomic`` writes a temporary file beside the destination and renames it, so a reader never sees half a
file; ``tempfile.mkstemp`` creates it 0600, so it is opened up to 0644 (0755 for folders, ``readable``)
before it takes the real name. ``locked(out)`` holds ``out/.workbench.lock`` (process id and host) for the length
of a run: a second run into the same folder is refused while the first lives, and the lock of a process that
died (kill -9) is reported and taken over. A lock written on another host (a shared network folder) is never
judged by a process id of this one: it refuses, naming the host and the file to delete if that run has ended.
Where it may write is checked before anything is: ``check_out_folder`` (training: absent, empty, or an unfinished
run of the same task), ``check_export_folder``, ``check_new_file`` (``--predictions``) and ``needs_writing``
(``data``: never replaces a file that differs without ``--force``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from workbench.core.validate import (
    CARD,
    EXPORT_SPEC,
    LOCK,
    SCRATCH,
    STATE_SHAPE,
    BadInput,
    checkpoint_pointer,
    read_card,
    read_export_spec,
    read_json,
)

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


def replace_folder(tmp: str | Path, dest: str | Path, stale=()) -> Path:
    """Put the finished folder ``tmp`` at ``dest`` with ordinary permissions, replacing the folder there (kept
    aside until the new one is in place), then remove the ``stale`` folders (other recipes' older copies)."""
    import shutil

    tmp, dest = Path(tmp), Path(dest)
    old = dest.with_name(f".{dest.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(readable(tmp), dest)
    shutil.rmtree(old, ignore_errors=True)
    for folder in map(Path, stale):
        if folder != dest:
            shutil.rmtree(folder, ignore_errors=True)
    return dest


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


# where the workbench may write: checked before anything is written ---------------------------------------
def check_new_file(path: str | Path, flag: str, force: bool = False) -> Path:
    """A file to be written: its folder exists, and the file does not (unless ``force``)."""
    path = Path(path).expanduser()
    if not str(path).strip() or path.name in ("", ".", ".."):
        raise BadInput(f"{flag} {str(path)!r} names no file; give a new file name")
    if path.is_dir():
        raise BadInput(f"{flag} {str(path)!r} is a folder; give a new file name")
    if not path.parent.is_dir():
        raise BadInput(f"{flag} {str(path)!r}: folder {str(path.parent)!r} does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise BadInput(f"{flag} {str(path)!r}: folder {str(path.parent)!r} is not writable")
    if path.exists() and not force:
        raise BadInput(f"{flag} {str(path)!r} exists; pass --force to replace it, or give a new file name")
    return path


def needs_writing(path: str | Path, text: str, force: bool = False) -> bool:
    """Whether ``path`` must be written to hold ``text``: False when it holds it already, True when it is absent
    (or with ``force``); BadInput when it holds something else, naming its first differing line, so a file a
    user edited is never replaced without ``--force``."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"{path} is a folder; expected a file the workbench writes there (move the folder away)")
    if path.parent.exists() and not path.parent.is_dir():
        raise BadInput(f"{path.parent} is a file; expected a folder holding {path.name} (move the file away)")
    if not path.exists():
        return True
    try:
        old = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        old = None
    if old == text:
        return False
    if force:
        return True
    at = 1 if old is None else next((i for i, (a, b) in enumerate(
        zip(old.splitlines() + [None], text.splitlines() + [None]), 1) if a != b), 1)
    raise BadInput(f"{path}:{at}: differs from what the workbench would write there; pass --force to replace it "
                   "(it may hold your edits), or write elsewhere")


def check_folder(folder: str | Path, flag: str, wanted: str = "a new or empty folder") -> Path:
    """``folder`` as a Path, once it names a folder (it may not exist yet) and is not a file."""
    if not str(folder).strip() or "\0" in str(folder):
        raise BadInput(f"{flag} {str(folder)!r} names no folder; give {wanted}")
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise BadInput(f"{flag} {str(folder)!r} exists and is not a folder")
    return path


def _folder_entries(out: str | Path, flag: str = "--out") -> tuple[Path, list[str]]:
    """``out`` as a Path and the names in it (none when absent), but for the lock and scratch files of the
    workbench's own writes; BadInput when it names no folder or is a file."""
    out = check_folder(out, flag)
    if not out.exists():
        return out, []
    return out, sorted(p.name for p in out.iterdir() if not p.name.startswith((LOCK, *SCRATCH)))


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def check_out_folder(out: str | Path, task: str, resume: bool = False) -> Path:
    """``--out`` for a training run: absent, empty, or a folder this project wrote for the same ``task``
    (an unfinished run, with ``resume``). A finished model is never rewritten. Nothing is created here."""
    out, entries = _folder_entries(out)
    if not entries:
        return out
    if (out / CARD).exists():
        tasks = read_card(out)["tasks"]
        if tasks != [task]:
            raise BadInput(f"--out {str(out)!r} holds a model of {', '.join(tasks)}, not {task}; choose another folder")
        raise BadInput(f"--out {str(out)!r} already holds a trained model; a finished model is never rewritten "
                       "(not by --resume either): choose another folder")
    ckpt = checkpoint_pointer(out)
    if ckpt is None:
        raise BadInput(f"--out {str(out)!r} holds files this workbench did not write ({_some(entries)}); "
                       "give an absent or empty folder")
    written = read_json(ckpt / "trainer_state.json", "trainer state", STATE_SHAPE).get("config") or {}
    if written.get("tasks", [task]) != [task]:
        raise BadInput(f"--out {str(out)!r} holds an unfinished run of {', '.join(map(str, written['tasks']))}, "
                       f"not {task}; choose another folder")
    if not resume:
        raise BadInput(f"--out {str(out)!r} holds checkpoints of an unfinished run; pass --resume to continue it "
                       "or choose another folder")
    return out


def check_export_folder(out: str | Path, flag: str = "--out") -> Path:
    """A folder to export models into (``bench agent --out``): absent, empty, or one an earlier export wrote (its
    ``export.json`` reads), whose exported files a new export replaces. A folder of anything else is refused:
    its files are never overwritten. Nothing is created here."""
    out, entries = _folder_entries(out, flag)
    if not entries:
        return out
    if EXPORT_SPEC not in entries:
        raise BadInput(f"{flag} {str(out)!r} holds files that are not an export of this workbench "
                       f"({_some(entries)}); give an absent or empty folder, or one an earlier export wrote")
    read_export_spec(out)
    return out
