"""`morec diagnose`'s decisive measurements on a tiny case where the answer is known.

The true dynamics ignores the state (s' = W a), so a model's open-loop state error at a step is the error of
the candidate it chose there, and a reward that knows W can score candidates by their exact error.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from morec.cli import main
from morec.dataset import Dataset
from morec.diagnostics import filter_models, flag_quality, measure_set, scaled_rmse

W = np.array([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.7]], np.float32)  # s' = W a: 3 state dims, 2 actions
BUNDLE = Path(__file__).resolve().parents[1] / "models" / "inverted_pendulum"


def true_next(act: np.ndarray) -> np.ndarray:
    return (np.asarray(act, np.float32) @ W.T).astype(np.float32)


class FakeDynamics:
    """Four members, three elites: truth plus a fixed offset each (the elites' mean is biased), and a std that
    grows with |a_0|."""

    obs_dim, act_dim = 3, 2
    elites = np.array([0, 1, 3])
    offsets = np.array([0.3, 0.1, 3.0, 0.2], np.float32)[:, None, None]

    def predict(self, obs, act):
        nxt = true_next(act)[None] + self.offsets  # [4, B, 3]
        mean = np.concatenate([nxt, np.zeros((*nxt.shape[:2], 1), np.float32)], -1)
        std = 0.05 + 0.3 * np.abs(np.asarray(act, np.float32)[None, :, :1]) * np.ones_like(mean)
        return mean, std


class TrueErrorReward:
    """r_D = 1 - (the candidate's true error, as the diagnostics measure it)."""

    def __init__(self, obs_scale):
        self.obs_scale = obs_scale

    def score(self, obs, act, candidates):
        return 1.0 - scaled_rmse(candidates, true_next(act)[:, None], self.obs_scale)


class ConstantReward:
    def score(self, obs, act, candidates):
        return np.ones(candidates.shape[:2], np.float32)


def fake_data(episodes=20, length=30, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    act = rng.standard_normal((episodes, length, 2)).astype(np.float32)
    nxt = true_next(act.reshape(-1, 2)).reshape(episodes, length, 3)
    obs = np.concatenate([np.zeros((episodes, 1, 3), np.float32), nxt[:, :-1]], 1)
    timeouts = np.zeros((episodes, length), bool)
    timeouts[:, -1] = True
    return Dataset(obs.reshape(-1, 3), act.reshape(-1, 2), np.zeros(episodes * length), nxt.reshape(-1, 3),
                   np.zeros(episodes * length, bool), timeouts.ravel(), {"env_id": "fake", "policy": "fake"})


@pytest.fixture(scope="module")
def data():
    return fake_data()


@pytest.fixture(scope="module")
def obs_scale(data):
    return data.observations.std(0)


def measure(reward, data, obs_scale):
    return measure_set(filter_models(FakeDynamics(), reward), data, obs_scale, horizon=20, starts=100,
                       transitions=300, seed=0)


def test_a_reward_that_knows_the_error_terminates_perfectly_and_beats_the_free_baseline(data, obs_scale):
    r = measure(TrueErrorReward(obs_scale), data, obs_scale)
    t, c = r["termination"], r["candidates"]
    assert t["steps"] == 20 * 100 and t["positive_share"] == pytest.approx(0.25, abs=0.01)
    assert t["auroc"]["dynamics_reward"] > 0.99 and t["auroc_within_step"]["dynamics_reward"] > 0.99
    assert t["auroc"]["disagreement"] < t["auroc"]["dynamics_reward"]
    # At the r_D < threshold rate the reward flags only wrong steps, or all of them.
    at = t["at_rate"]["dynamics_reward"]["r_D_below_threshold"]
    assert 0 < at["flagged"] < 1 and (at["precision"] == pytest.approx(1.0) or at["recall"] == pytest.approx(1.0))
    assert at["flagged"] == pytest.approx(t["rates"]["r_D_below_threshold"])
    assert t["at_rate"]["disagreement"]["r_D_below_threshold"]["flagged"] == pytest.approx(at["flagged"])
    # Within a pair it ranks perfectly and picks the best candidate; the free baseline ranks well but not perfectly.
    assert c["rank_corr_score"] == pytest.approx(1.0)
    assert 0.2 < c["rank_corr_free_baseline"] < c["rank_corr_score"]
    assert c["onestep_error_selected"] == pytest.approx(c["onestep_error_best_candidate"])
    assert c["selected_by_score_vs_random"] < c["selected_by_free_baseline_vs_random"] < 1.0
    assert c["pooled_pearson_score_log_mae"] < -0.5


def test_a_constant_reward_is_chance(data, obs_scale):
    r = measure(ConstantReward(), data, obs_scale)
    t, c = r["termination"], r["candidates"]
    assert t["auroc"]["dynamics_reward"] == 0.5 and t["auroc_within_step"]["dynamics_reward"] == 0.5
    assert t["rates"]["r_D_below_threshold"] == 0 and t["at_rate"]["dynamics_reward"]["r_D_below_threshold"] == {
        "flagged": 0.0, "precision": None, "recall": 0.0}
    assert c["rank_corr_score"] == 0 and c["rank_corr_score_tied_rows"] == 1
    assert c["pooled_pearson_score_log_mae"] is None
    assert c["selected_by_free_baseline_vs_random"] < 1.0  # the baseline needs no reward


def test_flagging_at_a_rate_takes_the_highest_signals():
    positive = np.array([True, False, True, False])
    assert flag_quality(np.array([3.0, 2.0, 1.0, 0.0]), positive, 0.5) == {"flagged": 0.5, "precision": 0.5,
                                                                            "recall": 0.5}
    assert flag_quality(np.array([3.0, 0.0, 2.0, 1.0]), positive, 0.5)["precision"] == 1.0


def test_diagnose_runs_a_bundle_of_onnx_graphs(tmp_path, pendulum_data, pendulum_eval_data):
    assert not list(BUNDLE.glob("*.pt"))  # the shipped tiny bundle has only the exported graphs
    train, held_out, report_path = tmp_path / "train.npz", tmp_path / "eval.npz", tmp_path / "report.json"
    pendulum_data.save(train)
    pendulum_eval_data.save(held_out)
    assert main(["diagnose", "--bundle", str(BUNDLE), "--train-data", str(train), "--eval-data",
                 f"held_out={held_out}", "--horizon", "3", "--starts", "30", "--transitions", "200",
                 "--out", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["backend"] == "onnx" and report["command"].startswith("morec diagnose")
    decisive = report["summary"]["held_out"]["decisive"]
    assert set(decisive["targets_met"]) == {"termination_auroc", "pooled_pearson", "choice"}
    assert 0 <= decisive["termination_auroc"]["r_D"] <= 1 and "rank_corr_mean_logit" not in report["sets"]["held_out"][
        "candidates"]
    with pytest.raises(ValueError, match="torch"):
        main(["diagnose", "--bundle", str(BUNDLE), "--train-data", str(train), "--eval-data", f"x={held_out}",
              "--horizon", "3", "--out", str(tmp_path / "r2.json"), "--snapshot-sweep", "1"])


class TrueDynamics:
    """The exact s' = W a as a one-member backend: what MuJoCo's set_state gives on a real task."""

    elites = np.array([0])

    def predict(self, obs, act):
        nxt = true_next(act)[None]
        return np.concatenate([nxt, np.zeros((*nxt.shape[:2], 1), np.float32)], -1), None


def test_along_a_policys_rollouts_a_reward_that_knows_the_error_flags_the_worst_steps(obs_scale):
    from morec.diagnostics import policy_rollout, termination_metrics
    from morec.rollout import FilterConfig, FilteredDynamics

    rng = np.random.default_rng(1)
    policy = lambda obs: rng.standard_normal((len(obs), 2)).astype(np.float32)  # noqa: E731
    starts = np.zeros((200, 3), np.float32)
    for reward, expected in ((TrueErrorReward(obs_scale), 1.0), (ConstantReward(), 0.5)):
        model = FilteredDynamics(FakeDynamics(), reward, FilterConfig())
        out, err = policy_rollout(model, TrueDynamics(), policy, starts, 10, obs_scale)
        assert out["score"].shape == err.shape == (10, 200)
        assert termination_metrics(out, err, 0.6)["auroc"]["dynamics_reward"] == pytest.approx(expected, abs=0.02)


def test_binning_by_error_shows_a_reward_that_rises_with_the_error_and_the_distance_from_the_data():
    from morec.diagnostics import by_error_quartile

    err = np.arange(8, dtype=float).reshape(2, 4)  # [H, N]: two steps of each quarter
    next_obs = np.zeros((2, 4, 2))
    next_obs[..., 1] = err * 2  # the model's state leaves the data as its error grows
    out = {"next_obs": next_obs, "score": err / 10, "disagreement": -err}
    bins = by_error_quartile(out, err, data_mean=np.zeros(2), obs_scale=np.array([1.0, 2.0]))
    assert [b["error"] for b in bins] == [0.5, 2.5, 4.5, 6.5]
    assert [b["r_D"] for b in bins] == pytest.approx([0.05, 0.25, 0.45, 0.65])
    assert [b["disagreement"] for b in bins] == [-0.5, -2.5, -4.5, -6.5]
    assert [b["distance_from_data"] for b in bins] == [0.5, 2.5, 4.5, 6.5]


def test_load_backends_prefers_the_checkpoints_unless_asked_for_the_graphs_a_run_trained_on(tmp_path):
    from morec.diagnostics import load_backends
    from morec.dynamics_reward import DynamicsReward
    from morec.ensemble import EnsembleConfig, EnsembleDynamics
    from morec.runtime import OnnxDynamics, OnnxReward

    EnsembleDynamics(4, 1, EnsembleConfig(hidden=(8,), weight_decay=(0.0, 0.0))).save(tmp_path / "ensemble.pt")
    DynamicsReward(4, 1, k=3).save(tmp_path / "dynamics_reward.pt")
    assert main(["export", "--bundle", str(tmp_path), "--snapshots", "1"]) == 0
    *_, torch_reward = load_backends(tmp_path)
    assert torch_reward is not None and torch_reward.num_snapshots == 3
    dynamics, scorer, torch_reward = load_backends(tmp_path, onnx=True)
    assert torch_reward is None and isinstance(dynamics, OnnxDynamics) and isinstance(scorer, OnnxReward)
    assert scorer.meta["snapshots"] == 1
