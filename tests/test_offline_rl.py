"""Offline policy learning (offline_rl.py): penalties, the model buffer, resume, export, and a short real run."""

import numpy as np
import pytest
import torch

from morec.collect import rollout_dataset
from morec.export import export_offline_policy
from morec.offline_rl import MinCritic, OfflineRLConfig, OfflineTrainer, make_rollout_model, task_config
from morec.runtime import OnnxCritic, OnnxDynamics, OnnxPolicy, OnnxReward
from morec.task_spec import load_task_spec

TASK = load_task_spec("inverted_pendulum")
SMALL = dict(hidden=(32, 32), rollout_batch=16, rollout_every=10, rollout_horizon=4, eval_episodes=1, threads=1)


class DriftingDynamics:
    """Three elites: the slider drifts, s'_0 = s_0 + 0.3 + 0.1 k for elite k; the other dimensions halve;
    reward 1 exactly; known state stds."""

    obs_dim, act_dim = 4, 1
    elites = np.array([0, 1, 2])

    def __init__(self, stds=(0.1, 0.2, 0.3)):
        self.stds = np.asarray(stds, np.float32)

    def predict(self, obs, act):
        nxt = 0.5 * obs[None].repeat(3, 0)
        nxt[:, :, 0] = obs[None, :, 0] + 0.3 + 0.1 * np.arange(3, dtype=np.float32)[:, None]
        mean = np.concatenate([nxt, np.ones((3, len(obs), 1), np.float32)], -1)
        std = np.broadcast_to(self.stds[:, None, None], mean.shape).copy()
        std[..., -1] = 0.0
        return mean, std


class SliderReward:
    """r_D that falls as the slider drifts away: rollouts leave the trusted region after a few steps."""

    def score(self, obs, act, cands):
        return 1.0 - 0.1 * np.abs(cands[..., 0])


@pytest.fixture(scope="module")
def data():
    return rollout_dataset(TASK, None, 600, seed=0, policy_name="random", progress=False)


def trainer(data, tmp_path, morec=True, backbone="mopo", dynamics=None, **overrides):
    cfg = OfflineRLConfig(backbone=backbone, morec=morec, **{**SMALL, **overrides})
    model = make_rollout_model(dynamics or DriftingDynamics(), SliderReward(), cfg, TASK)
    return OfflineTrainer(TASK, data, model, cfg, tmp_path, progress=False)


def test_mopo_reward_is_the_model_reward_minus_the_largest_member_std_norm(data, tmp_path):
    t = trainer(data, tmp_path, morec=False, penalty_coef=2.0, rollout_horizon=1)
    t.rollout()
    # max over members of ||std|| over the 4 state dimensions: member 2's, 0.3 * 2 = 0.6
    np.testing.assert_allclose(t.buffer.reward[: t.buffer.size], 1.0 - 2.0 * 0.6, rtol=1e-5)


def test_mobile_penalty_is_the_spread_over_elites_of_the_next_state_value(data, tmp_path):
    t = trainer(data, tmp_path, backbone="mobile", dynamics=DriftingDynamics(stds=(0.0, 0.0, 0.0)))

    class FirstCoordinate(torch.nn.Module):  # Q(s, a) = s_0 for both twins
        def forward(self, obs, act):
            return obs[:, 0].expand(2, -1)

    t.critic_target = FirstCoordinate()
    obs = torch.zeros(5, 4)
    penalty = t.mobile_penalty(obs, torch.zeros(5, 1))
    # next-state values 0.3, 0.4, 0.5 under the three elites: sample std 0.1
    np.testing.assert_allclose(penalty.numpy(), 0.1, rtol=1e-5)


def test_mobile_penalty_in_bfloat16_matches_float32(data, tmp_path):
    t = trainer(data, tmp_path, backbone="mobile", hidden=(256, 256))
    obs, act = torch.as_tensor(data.observations[:64]), torch.as_tensor(data.actions[:64])
    penalties = {}
    for bf16 in (False, True):
        t.mobile_bf16, t.rng = bf16, np.random.default_rng(0)
        torch.manual_seed(0)
        with torch.no_grad():
            penalties[bf16] = t.mobile_penalty(obs, act).numpy()
    assert penalties[True].dtype == np.float32
    assert np.corrcoef(penalties[False], penalties[True])[0, 1] > 0.99
    np.testing.assert_allclose(penalties[True].mean(), penalties[False].mean(), rtol=0.03)


def test_rollouts_ended_by_the_filter_are_terminal_and_never_bootstrapped(data, tmp_path):
    t = trainer(data, tmp_path, rollout_horizon=50, threshold=0.75, dynamics=DriftingDynamics(stds=(1e-4,) * 3))
    stats = t.rollout()
    terminal = t.buffer.terminal[: t.buffer.size].astype(bool)
    assert terminal.any() and stats.ended_by_filter > 0
    assert stats.length < 50  # the filter cut rollouts short of the horizon
    batch = [torch.from_numpy(np.stack([getattr(t.buffer, f)[i] for i in range(8)])) for f in t.buffer.FIELDS]
    batch[4][:] = torch.tensor([1.0, 0.0] * 4)
    target, _ = t.td_target(batch, n_real=0)
    np.testing.assert_allclose(target[::2].numpy(), batch[2][::2].numpy())  # terminal rows: the reward alone
    assert not np.allclose(target[1::2].numpy(), batch[2][1::2].numpy())


class GrowingSpread(DriftingDynamics):
    """The members grow uncertain as the slider drifts: std 0.1 (1 + |s_0|) per state dimension."""

    def predict(self, obs, act):
        mean, std = super().predict(obs, act)
        std[..., :-1] = 0.1 * (1.0 + np.abs(obs[None, :, :1]))
        return mean, std


def test_rollouts_end_where_the_disagreement_passes_its_quantile_on_the_data(data, tmp_path):
    t = trainer(data, tmp_path, morec=False, rollout_horizon=50, end_quantile=0.9, dynamics=GrowingSpread())
    on_data = 0.2 * (1.0 + np.abs(data.observations[:, 0]))  # ||std|| over the 4 dimensions
    assert t.end_disagreement == pytest.approx(np.quantile(on_data, 0.9), rel=0.01)
    stats = t.rollout()
    assert stats.ended_by_filter == 1.0 and stats.length < 50  # every rollout drifts out and ends
    terminal = t.buffer.terminal[: t.buffer.size].astype(bool)
    spread = 0.2 * (1.0 + np.abs(t.buffer.obs[: t.buffer.size, 0]))
    assert terminal.sum() == t.cfg.rollout_batch and (spread[terminal] > t.end_disagreement).all()
    assert t.cfg.method == "MOPO, ended by disagreement"
    with pytest.raises(ValueError, match="no-morec"):
        OfflineRLConfig(morec=True, end_quantile=0.9)


def test_the_threshold_at_a_data_quantile_is_the_chosen_r_d_there_and_ends_drifting_rollouts(data, tmp_path):
    t = trainer(data, tmp_path, rollout_horizon=50, threshold_quantile=0.1, dynamics=DriftingDynamics(stds=(1e-4,) * 3))
    # The filter keeps the candidate nearest the slider's origin: r_D = 1 - 0.1 min_k |s_0 + 0.3 + 0.1 k|
    s0 = data.observations[:, :1] + 0.3 + 0.1 * np.arange(3)
    on_data = 1.0 - 0.1 * np.abs(s0).min(axis=1)
    assert t.model.cfg.threshold == pytest.approx(np.quantile(on_data, 0.1), abs=1e-3)
    assert t.result()["threshold_used"] == t.model.cfg.threshold
    stats = t.rollout()
    assert stats.ended_by_filter == 1.0 and stats.length < 50  # the slider drifts out of the data's range
    assert t.cfg.method == "MOREC-MOPO, threshold at a data quantile"
    with pytest.raises(ValueError, match="without --no-morec"):
        OfflineRLConfig(morec=False, threshold_quantile=0.1)


def test_batches_mix_real_and_model_rows_at_the_configured_ratio(data, tmp_path):
    t = trainer(data, tmp_path, real_ratio=0.25, batch_size=64)
    t.rollout()
    t.buffer.reward[:] = -7.0  # model rows are recognisable
    reward = t.sample_batch()[2].numpy()
    assert (reward != -7.0).sum() == 16 and (reward[:16] != -7.0).all()


def test_a_resumed_run_ends_in_the_same_state_as_an_uninterrupted_one(data, tmp_path):
    cfg = dict(steps=40, eval_every=20)
    whole = trainer(data, tmp_path / "whole", **cfg)
    whole.run()
    first = trainer(data, tmp_path / "split", **cfg)
    first.run(until=20)
    cfg_resumed = OfflineRLConfig(backbone="mopo", morec=True, **{**SMALL, **cfg})
    resumed = OfflineTrainer(TASK, data, make_rollout_model(DriftingDynamics(), SliderReward(), cfg_resumed, TASK),
                             cfg_resumed, tmp_path / "split", resume=True, progress=False)
    assert resumed.step == 20
    resumed.run()
    for a, b in zip(whole.actor.state_dict().values(), resumed.actor.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [c["step"] for c in resumed.curve] == [20, 40]
    log = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and sum(line.startswith("step,") for line in log) == 1


def test_resuming_with_other_settings_is_refused(data, tmp_path):
    trainer(data, tmp_path, steps=10, eval_every=10).run()
    cfg = OfflineRLConfig(**{**SMALL, "steps": 10, "eval_every": 10, "penalty_coef": 9.0})
    with pytest.raises(ValueError, match="another configuration"):
        OfflineTrainer(TASK, data, make_rollout_model(DriftingDynamics(), SliderReward(), cfg, TASK), cfg, tmp_path,
                       resume=True, progress=False)


def test_exported_policy_and_critic_match_torch(data, tmp_path):
    t = trainer(data, tmp_path)
    export_offline_policy(t.actor, MinCritic(t.critic), tmp_path, TASK, {"method": "test"})
    obs = data.observations[:50]
    act = data.actions[:50]
    np.testing.assert_allclose(OnnxPolicy(tmp_path / "policy.onnx", TASK, "cpu")(obs), t.act(obs, deterministic=True),
                               atol=1e-5)
    with torch.no_grad():
        q = MinCritic(t.critic)(torch.from_numpy(obs), torch.from_numpy(act)).numpy()
    np.testing.assert_allclose(OnnxCritic(tmp_path / "critic.onnx", TASK, "cpu")(obs, act), q, atol=1e-4)


def test_task_config_reads_the_per_task_coefficients():
    cheetah = load_task_spec("halfcheetah")
    assert task_config(cheetah, "mopo", True, "medium")["rollout_horizon"] == 100
    assert task_config(cheetah, "mopo", False, "medium")["rollout_horizon"] == 5
    assert task_config(cheetah, "mobile", False, "medium-expert")["penalty_coef"] == 1.0
    with pytest.raises(ValueError, match="no dataset level"):
        task_config(cheetah, "mopo", True, "expert-ish")


def test_morec_mopo_on_the_shipped_pendulum_bundle_beats_the_random_policy(data, tmp_path):
    """End to end on the real shipped models: a short run clearly beats uniform random actions."""
    from morec.behavior import evaluate_policy

    cfg = OfflineRLConfig(morec=True, **task_config(TASK, "mopo", True, "random"), steps=1500, eval_every=1500,
                          eval_episodes=3, rollout_batch=200, rollout_every=250, threads=1)
    dynamics = OnnxDynamics("models/inverted_pendulum/ensemble.onnx", "cpu", 1)
    reward = OnnxReward("models/inverted_pendulum/dynamics_reward.onnx", "cpu", 1)
    t = OfflineTrainer(TASK, data, make_rollout_model(dynamics, reward, cfg, TASK), cfg, tmp_path, progress=False)
    result = t.run()

    class Random:
        space = TASK.make_env().action_space

        def predict(self, obs, deterministic=True):
            return self.space.sample(), None

    Random.space.seed(0)
    random_return, _ = evaluate_policy(Random(), TASK, 10, seed=0)
    assert result["final"]["return_mean"] > 3 * random_return + 10, (result["final"], random_return)
    assert 0 < result["rollout"]["length"] <= 20


def test_train_policy_through_the_simulator_records_it_and_charges_no_mopo_penalty(data, tmp_path):
    """`--model simulator`: the true dynamics in place of the ensemble (std 0, so MOPO's penalty is 0)."""
    import json

    from morec.cli import main

    path = tmp_path / "data.npz"
    data.save(path)
    out = tmp_path / "run"
    assert main(["train-policy", "--bundle", "models/inverted_pendulum", "--data", str(path), "--level", "random",
                 "--backbone", "mopo", "--no-morec", "--model", "simulator", "--out", str(out), "--steps", "40",
                 "--eval-every", "40", "--eval-episodes", "1", "--rollout-batch", "16", "--rollout-every", "20",
                 "--hidden", "32", "32", "--threads", "1"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert "--model simulator" in result["command"]
    rows = (out / "log.csv").read_text().splitlines()
    column = rows[0].split(",").index("penalty_mean")
    assert all(float(r.split(",")[column]) == 0.0 for r in rows[1:])
    assert result["rollout"]["transitions"] > 0
