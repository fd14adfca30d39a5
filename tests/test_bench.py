"""Benchmarks: ``bench router`` runs both decode paths on the same requests and finds the same replies."""

from workbench.bench import bench_router, router_table


def test_bench_router_times_both_paths_on_the_same_requests(tiny_student):
    _, _, folder = tiny_student
    out = bench_router(str(folder), level=2, n=1, repeats=2, max_new_tokens=12)
    rows = {r["path"]: r for r in out["rows"]}
    assert set(rows) == {"constrained, lean", "constrained, transformers", "free, lean", "free, transformers"}
    assert rows["constrained, lean"]["decoder"] == "lean" and rows["free, transformers"]["decoder"] == "transformers"
    for r in rows.values():
        assert r["same_replies"] == 1 and r["n"] == 1 and r["repeats"] == 2 and 0 < r["p50_ms"] <= r["p95_ms"]
    assert rows["constrained, lean"]["model_share"] > 0 and rows["free, transformers"]["model_share"] is None
    assert "| constrained, lean | lean | 1 x 2 |" in router_table(out["rows"])
