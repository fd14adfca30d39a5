"""Benchmarks: ``bench router`` runs both decode paths on the same requests and finds the same replies."""

import pytest

from workbench.bench import bench_router, router_table

pytestmark = pytest.mark.slow  # each exports and times every path (make unit and CI run them; make check does not)


def test_bench_router_times_both_paths_on_the_same_requests(tiny_student):
    _, _, folder = tiny_student
    out = bench_router(str(folder), level=2, n=1, repeats=2, max_new_tokens=12)
    rows = {r["path"]: r for r in out["rows"]}
    assert set(rows) == {"constrained, lean", "constrained, transformers", "free, lean", "free, transformers",
                         "constrained, lean, no jump-forward", "constrained, onnxruntime fp32, KV cache",
                         "constrained, onnxruntime int8, KV cache"}
    assert rows["constrained, lean"]["decoder"] == "lean" and rows["free, transformers"]["decoder"] == "transformers"
    assert rows["constrained, onnxruntime fp32, KV cache"]["decoder"] == "lean"
    # jump-forward: the call's fixed opening at least is forced; one step per token writes the same reply
    assert rows["constrained, lean"]["jumped_share"] > 0 == rows["constrained, lean, no jump-forward"]["jumped_share"]
    assert rows["constrained, lean"]["tokens_per_request"] == rows["constrained, lean, no jump-forward"][
        "tokens_per_request"]
    for path, r in rows.items():
        assert r["n"] == 1 and r["repeats"] == 2 and 0 < r["p50_ms"] <= r["p95_ms"]
        assert r["same_replies"] == 1 or "int8" in path, path  # int8 weights may change a random model's reply
    assert rows["constrained, lean"]["model_share"] > 0 and rows["free, transformers"]["model_share"] is None
    text = router_table(out["rows"])
    assert "| constrained, lean | lean | 1 x 2 |" in text and "| — | — | 1/1 |" in text  # generate: no counts


def test_bench_router_without_onnx_times_the_torch_paths_only(tiny_student):
    _, _, folder = tiny_student
    out = bench_router(str(folder), level=2, n=1, repeats=1, max_new_tokens=8, onnx=False)
    assert {r["path"] for r in out["rows"]} == {"constrained, lean", "constrained, transformers", "free, lean",
                                                "free, transformers", "constrained, lean, no jump-forward"}
