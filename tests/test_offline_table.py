"""bench/offline_table.py: the benchmark's table names runs by method, an experiment subfolder's by grid name."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("offline_table", ROOT / "bench" / "offline_table.py")
offline_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(offline_table)


def run(method: str, score: float, morec: bool) -> dict:
    curve = [{"step": 10 * i, "score_mean": score + i, "rollout_length": 50.0, "ended_by_filter": 0.2}
             for i in range(3)]
    return {"method": method, "budget_steps": 30, "curve": curve, "config": {"morec": morec},
            "final": {"score_mean": score + 2, "return_mean": 100.0}}


def test_subfolder_runs_that_share_a_method_name_keep_their_grid_names(tmp_path):
    sub = tmp_path / "halfcheetah-medium" / "reward"
    sub.mkdir(parents=True)
    method = "MOREC-MOPO, threshold at a data quantile"
    for name, score in (("morec-mopo-a-q05", 10.0), ("morec-mopo-b-q05", 20.0)):
        (sub / f"{name}_seed0.json").write_text(json.dumps(run(method, score, True)))
    assert set(offline_table.load_results(sub)) == {method}
    by_name = offline_table.load_results(sub, by_file_name=True)
    assert set(by_name) == {"morec-mopo-a-q05", "morec-mopo-b-q05"}
    rows = offline_table.table("halfcheetah-medium", by_name).splitlines()
    a = next(r for r in rows if r.startswith("| morec-mopo-a-q05 "))
    assert "| 12.0 |" in a and "| 11.0 |" in a and a.rstrip().endswith("| 0.20 |")  # last, last-3 mean, ended
