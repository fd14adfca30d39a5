"""Measurements every study shares: parameters, bytes, forward latency, the machine's matmul rate and
peak memory. ``evaluate.account(...)`` puts them beside accuracy in one row of a side-by-side table.

Latency is a median of several forward passes after warm-up passes (the first pay for thread start-up
and memory allocation). Speed figures are benchmarks, never timed assertions in tests.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

WEIGHT_SUFFIXES = {".safetensors", ".bin", ".gguf", ".pt"}  # what counts as a model's weight files


def count_params(model) -> int:
    """Parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


def param_bytes(model) -> int:
    """Bytes the parameters take in memory (tied weights counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def bytes_on_disk(path: str | Path) -> int:
    """Bytes of the weight files in a saved model folder."""
    path = Path(path)
    return sum(f.stat().st_size for f in path.iterdir() if f.suffix in WEIGHT_SUFFIXES)


def saved_bytes(model, tokenizer=None, save=None) -> int:
    """Bytes on disk once ``model`` is saved by ``save(model, tokenizer, folder)`` (default ``save_pretrained``)."""
    with tempfile.TemporaryDirectory() as tmp:
        if save is None:
            model.save_pretrained(tmp, safe_serialization=True)
        else:
            save(model, tokenizer, tmp)
        return bytes_on_disk(tmp)


class PeakRSS:
    """Peak resident memory of this process while the block runs, above what it was at the start (MB)."""

    def __init__(self, every: float = 0.005):
        self.every, self.peak_mb, self._stop = every, 0.0, threading.Event()

    @staticmethod
    def rss_mb() -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except OSError:  # not Linux: the lifetime peak is the best there is
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _watch(self):
        while not self._stop.is_set():
            self.top = max(self.top, self.rss_mb())
            time.sleep(self.every)

    def __enter__(self):
        self.start = self.top = self.rss_mb()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.top, self.rss_mb()) - self.start


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of an n x n x n matmul on the current device (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


@torch.no_grad()
def forward_latency(model, batch: int, length: int = 128, repeats: int = 9, warmup: int = 3) -> float:
    """Median milliseconds of one forward pass over ``batch`` x ``length`` tokens, after ``warmup`` passes."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(4, model.config.vocab_size, (batch, length), generator=gen).to(device)
    for _ in range(warmup):
        model(input_ids=x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(input_ids=x)
        times.append(time.perf_counter() - t0)
    model.train(was)
    return 1000 * statistics.median(times)
