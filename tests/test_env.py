import os
import re
from pathlib import Path

import pytest
import tomllib

from workbench.core import env

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", env.PROFILES)
def test_profiles(name):
    assert env.profile(name).name == name


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_PROFILE", "Laptop ")
    assert env.profile_name() == "laptop"


def test_default_profile_follows_cuda(monkeypatch):
    import torch

    monkeypatch.setenv("WORKBENCH_PROFILE", "")
    assert env.profile_name() == ("gpu" if torch.cuda.is_available() else "laptop")


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("WORKBENCH_PROFILE", "huge")
    with pytest.raises(ValueError, match="unknown profile 'huge'.*smoke, laptop, gpu"):
        env.profile_name()


def test_setup_seeds_everything():
    import torch

    a = env.setup(seed=3, profile_override="smoke")
    x = torch.rand(3)
    env.setup(seed=3, profile_override="smoke")
    assert torch.equal(x, torch.rand(3)) and a.threads >= 1 and "cores" in a.machine


def _names(reqs):
    return {re.split(r"[<>=!~\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in reqs}


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= _names(extra)
    pip_section = (ROOT / "environment.yml").read_text().split("- pip:", 1)[1]
    pip_lines = re.findall(r"^ {6}- (\S[^\n]*)$", pip_section, re.M)
    listed = _names(line for line in pip_lines if not line.startswith("-e"))
    assert listed == wanted
    # the pins agree too (torch above all: unpinned, it pulls a CUDA build)
    assert "torch==2.13.0" in (ROOT / "environment.yml").read_text() and "torch==2.13.0" in project["dependencies"]


@pytest.mark.parametrize("profile, cores, jobs, expected", [("laptop", 2, 18, 2), ("laptop", 8, 3, 3),
                                                            ("smoke", 2, 18, 1), ("laptop", 1, 18, 1)])
def test_independent_trainings_get_a_process_per_core_on_a_cpu_outside_smoke(monkeypatch, profile, cores, jobs,
                                                                               expected):
    monkeypatch.delenv("WORKBENCH_WORKERS", raising=False)
    monkeypatch.setenv("WORKBENCH_PROFILE", profile)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert env.workers(jobs) == expected


def test_workers_follow_workbench_workers_and_refuse_a_bad_value(monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKERS", "1")
    assert env.workers(18) == 1
    monkeypatch.setenv("WORKBENCH_WORKERS", "0")
    with pytest.raises(ValueError, match="WORKBENCH_WORKERS must be a positive integer, got '0'"):
        env.workers(18)


def test_starmap_gives_results_in_order_from_one_thread_processes_or_from_here():
    import operator

    import torch

    jobs = [(i, 3) for i in range(5)]
    assert list(env.starmap(operator.mul, jobs, n_workers=1)) == [0, 3, 6, 9, 12]
    assert list(env.starmap(operator.mul, jobs, n_workers=2)) == [0, 3, 6, 9, 12]
    pids = set(env.starmap(os.getpid, [()] * 4, n_workers=2))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # spawned workers, not this process
    assert list(env.starmap(torch.get_num_threads, [()] * 2, n_workers=2)) == [1, 1]  # one torch thread each


def test_threads_follow_omp_num_threads_when_the_user_sets_it(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert env.set_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert env.set_threads() == len(os.sched_getaffinity(0))
        monkeypatch.setenv("OMP_NUM_THREADS", "two")
        with pytest.raises(ValueError, match="OMP_NUM_THREADS must be a positive integer, got 'two'"):
            env.set_threads()
    finally:
        torch.set_num_threads(before)
