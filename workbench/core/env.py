"""The run's size, device, seeds and threads, decided in one place.

The profile is read once from ``WORKBENCH_PROFILE``: ``smoke`` (CI, every notebook in about a
minute), ``laptop`` (default on CPU: a 2-core machine, each notebook within about ten minutes)
or ``gpu`` (default when CUDA is present: full-size runs and the real pretrained teachers).
Notebooks and tests call ``setup()`` once at the top; nothing else reads the environment.
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass, fields, replace

from workbench.core.validate import BadInput

PROFILES = ("smoke", "laptop", "gpu")


@dataclass(frozen=True)
class Profile:
    name: str
    eval_n: int  # test examples scored per task (and per level) in notebooks
    shots: int  # few-shot examples shown to the pretrained models
    eval_batch: int  # sequences generated at once during evaluation
    pretrained: tuple[str, ...]  # real pretrained models scored as baselines
    pretrained_chat: bool  # also score the instruct model through its chat template
    specialist_eval_n: int | None = None  # test examples a trained specialist is scored on (None: all 100)


SIZES: dict[str, Profile] = {
    "smoke": Profile("smoke", eval_n=2, shots=3, eval_batch=4,
                     pretrained=("smollm2-135m-instruct", "gemma-3-270m"), pretrained_chat=True,
                     specialist_eval_n=4),
    "laptop": Profile("laptop", eval_n=30, shots=3, eval_batch=8,
                      pretrained=("smollm2-135m-instruct", "gemma-3-270m"), pretrained_chat=True),
    "gpu": Profile("gpu", eval_n=250, shots=3, eval_batch=32,
                   pretrained=("smollm2-135m-instruct", "gemma-3-270m"), pretrained_chat=True),
}


def profile_name(value: str | None = None) -> str:
    """The profile named by ``value`` or ``WORKBENCH_PROFILE``, else gpu with CUDA, else laptop."""
    source = "profile" if value is not None else "WORKBENCH_PROFILE"
    value = value if value is not None else os.environ.get("WORKBENCH_PROFILE", "")
    if not isinstance(value, str):
        raise BadInput(f"{source} {value!r} is not a name; choose one of {', '.join(PROFILES)}")
    value = value.strip().lower()
    if not value and source == "profile":  # an empty WORKBENCH_PROFILE means unset; an empty argument is a mistake
        raise BadInput(f"profile {value!r} is empty; choose one of {', '.join(PROFILES)}")
    if not value:
        import torch

        return "gpu" if torch.cuda.is_available() else "laptop"
    if value not in PROFILES:
        raise BadInput(f"unknown profile {value!r} (from {source}); choose one of {', '.join(PROFILES)}")
    return value


def profile(value: str | None = None) -> Profile:
    return SIZES[profile_name(value)]


def sized(study_cls, profile: str | None = None, **overrides):
    """``study_cls()`` sized for the profile: the one mechanism every study uses.

    A study's dataclass defaults are its laptop size; its ``SIZES`` class attribute names the fields that
    change in the other profiles, e.g. ``SIZES = {"smoke": dict(steps=4, test_n=2), "gpu": dict(steps=3000)}``.
    ``overrides`` change fields after that (``sized(Study, steps=10)``).
    """
    known = {f.name for f in fields(study_cls)}
    changes = {**getattr(study_cls, "SIZES", {}).get(profile_name(profile), {}), **overrides}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"{study_cls.__name__} has no field {unknown[0]!r}; its fields are {', '.join(sorted(known))}")
    return replace(study_cls(), **changes)


def device():
    """cuda, then mps, then cpu."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int = 0) -> None:
    """Seed Python, NumPy (when present) and torch, on every device."""
    import torch

    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy comes with torch's usual installs
        pass
    torch.manual_seed(seed)  # also seeds every CUDA device


def set_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads for torch (default: ``OMP_NUM_THREADS`` where the user set it, else every core this
    process may use)."""
    import torch

    if n is None:
        n = _positive_env("OMP_NUM_THREADS") or cores()
    torch.set_num_threads(n)
    return n


def cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _positive_env(name: str) -> int | None:
    """The positive integer in environment variable ``name``, None where it is unset or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isdigit() and int(raw) > 0):
        raise BadInput(f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


def machine() -> str:
    """One line naming this machine, for results tables: CPU cores, memory, accelerator."""
    import torch

    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    acc = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()} {cores()} cores{mem}, {acc}, torch {torch.__version__}"


@dataclass(frozen=True)
class Setup:
    profile: Profile
    device: object
    seed: int
    threads: int
    machine: str

    def __repr__(self) -> str:
        return (f"profile={self.profile.name} device={self.device} seed={self.seed} "
                f"threads={self.threads} machine={self.machine!r}")


def setup(seed: int = 0, profile_override: str | None = None) -> Setup:
    """The one call at the top of every notebook: profile, device, seed and threads."""
    prof = profile(profile_override)
    set_seed(seed)
    threads = set_threads()
    return Setup(prof, device(), seed, threads, machine())


# independent trainings side by side ------------------------------------------------------------------------------
def workers(jobs: int) -> int:
    """How many processes run ``jobs`` independent trainings at once: ``WORKBENCH_WORKERS`` where set, else one per
    core on a CPU in laptop (a 0.1M student trains ~25% faster on a second torch thread but ~1.8x as fast beside a
    second one-thread process, measured on 2 cores; a 0.82M one gains as much from the thread, so those train in
    turn), and 1 in smoke (seconds-long runs: starting processes would cost more) or with CUDA. At most ``jobs``."""
    n = _positive_env("WORKBENCH_WORKERS")
    if n is None:
        import torch

        n = 1 if profile_name() == "smoke" or torch.cuda.is_available() else cores()
    return max(1, min(n, jobs))


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def starmap(fn, jobs: list[tuple], n_workers: int | None = None):
    """``fn(*job)`` for every job, yielded in order as each finishes. With one worker (``workers``) they run here,
    one after another; with more, in that many spawned processes of one torch thread each (``fn`` and its arguments
    must pickle: a module-level function, models and plain data). Each job seeds itself, so its result does not
    depend on which process ran it or when."""
    jobs = list(jobs)
    n = workers(len(jobs)) if n_workers is None else max(1, min(n_workers, len(jobs)))
    if n <= 1:
        for job in jobs:
            yield fn(*job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        for future in futures:
            yield future.result()
