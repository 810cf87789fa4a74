"""End to end through the CLI on the tiny task: collect -> train dynamics -> train reward -> export -> diagnose."""

import json

from morec.cli import main
from morec.rollout import FilterConfig, FilteredDynamics
from morec.runtime import OnnxDynamics, OnnxReward


def test_cli_pipeline_on_inverted_pendulum(tmp_path):
    data, held_out, bundle = tmp_path / "train.npz", tmp_path / "eval.npz", tmp_path / "bundle"
    assert main(["collect", "--task", "InvertedPendulum-v5", "--level", "random", "--steps", "3000",
                 "--out", str(data)]) == 0
    assert main(["collect", "--task", "inverted_pendulum", "--level", "random", "--steps", "800", "--seed", "7",
                 "--out", str(held_out)]) == 0
    assert main(["train-dynamics", "--data", str(data), "--bundle", str(bundle), "--threads", "1",
                 "--hidden", "64", "64", "--weight-decay", "2.5e-5", "5e-5", "1e-4", "--max-epochs", "15",
                 "--batch-size", "128"]) == 0
    assert main(["train-reward", "--data", str(data), "--bundle", str(bundle), "--threads", "1",
                 "--iterations", "600", "--keep-snapshots", "30", "--snapshot-stride", "3",
                 "--calibration-size", "512"]) == 0
    assert main(["export", "--bundle", str(bundle), "--snapshots", "5"]) == 0
    report_path = tmp_path / "report.json"
    assert main(["diagnose", "--bundle", str(bundle), "--train-data", str(data), "--eval-data",
                 f"held_out={held_out}", "--horizon", "5", "--starts", "50", "--transitions", "400",
                 "--out", str(report_path), "--plot", str(tmp_path / "report.png"), "--snapshot-sweep", "1", "5"]) == 0

    report = json.loads(report_path.read_text())
    assert set(report["sets"]) == {"train", "held_out"}
    cand = report["sets"]["held_out"]["candidates"]
    assert cand["onestep_error_selected"] < cand["onestep_error_random_candidate"]
    assert (tmp_path / "report.png").stat().st_size > 10_000
    sweep = report["sets"]["held_out"]["snapshot_sweep"]
    assert [row["snapshots"] for row in sweep] == [1, 5]
    assert sweep[1]["ms_per_1000x10_candidates"] > 0
    card = json.loads((bundle / "card.json").read_text())
    assert {"ensemble", "dynamics_reward", "onnx"} <= set(card)

    # The exported bundle runs on ONNX Runtime alone.
    import numpy as np

    reward = OnnxReward(bundle / "dynamics_reward.onnx")
    assert reward.meta["snapshots"] == 5
    model = FilteredDynamics(OnnxDynamics(bundle / "ensemble.onnx", obs_dim=4, act_dim=1), reward, FilterConfig())
    step = model.step(np.zeros((2, 4), np.float32), np.zeros((2, 1), np.float32), np.random.default_rng(0))
    assert step.next_obs.shape == (2, 4) and np.isfinite(step.score).all()
