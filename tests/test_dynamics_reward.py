import dataclasses

import numpy as np
import pytest
import torch

from morec.diagnostics import candidate_metrics
from morec.dynamics_reward import Discriminator, DynamicsReward, TorchReward
from morec.ensemble import TorchDynamics
from morec.rollout import FilterConfig, FilteredDynamics


def _random_snapshots(k, obs_dim=3, act_dim=2, seed=0):
    torch.manual_seed(seed)
    snaps = []
    for i in range(k):
        disc = Discriminator(obs_dim, act_dim)
        snaps.append({"disc": {n: v.clone() for n, v in disc.state_dict().items()}, "expert": 1.0 + i, "learner": -1.0})
    return snaps


def test_discriminator_scores_every_candidate():
    disc = Discriminator(3, 2, k=4)
    logits = disc(torch.randn(5, 3), torch.randn(5, 2), torch.randn(5, 7, 3))
    assert logits.shape == (4, 5, 7)


def test_head_lets_the_state_change_the_ranking_of_candidate_state_changes():
    # With an additive (linear) head the ranking of candidates would be the same for every (s, a).
    torch.manual_seed(1)
    disc = Discriminator(3, 2)
    deltas = torch.randn(1, 20, 3)
    orders = set()
    for _ in range(10):
        s, a = 3 * torch.randn(1, 3), torch.randn(1, 2)
        orders.add(tuple(disc(s, a, s.unsqueeze(1) + deltas)[0, 0].argsort().tolist()))
    assert len(orders) > 1


def test_reward_matches_the_formula_over_calibrated_snapshots():
    snaps = _random_snapshots(3)
    reward = DynamicsReward.from_snapshots(snaps, 3, 2)
    obs, act, cands = torch.randn(4, 3), torch.randn(4, 2), torch.randn(4, 6, 3)
    ps = []
    for snap in snaps:
        disc = Discriminator(3, 2)
        disc.load_state_dict(snap["disc"])
        logit = disc(obs, act, cands)[0].clamp(snap["learner"], snap["expert"])
        unit = 2 * (logit - snap["learner"]) / (snap["expert"] - snap["learner"]) - 1
        ps.append(torch.sigmoid(unit))
    expected = -torch.log(1 - torch.stack(ps).mean(0) + 1e-9)
    torch.testing.assert_close(reward(obs, act, cands), expected)


def test_reward_lies_in_the_calibrated_range():
    reward = DynamicsReward.from_snapshots(_random_snapshots(5), 3, 2)
    r = reward(100 * torch.randn(64, 3), torch.randn(64, 2), 100 * torch.randn(64, 10, 3))
    low, high = -np.log(1 - 1 / (1 + np.e)), -np.log(1 - 1 / (1 + np.exp(-1)))
    assert r.min() >= low - 1e-5 and r.max() <= high + 1e-5


def test_save_load_round_trip(tmp_path, tiny_reward):
    tiny_reward.save(tmp_path / "r.pt")
    loaded = DynamicsReward.load(tmp_path / "r.pt")
    obs, act, cands = torch.randn(3, 4), torch.randn(3, 1), torch.randn(3, 5, 4)
    torch.testing.assert_close(loaded(obs, act, cands), tiny_reward(obs, act, cands))
    assert loaded.num_snapshots == tiny_reward.num_snapshots == 10


def test_a_narrow_discriminator_keeps_its_width_through_save_and_load(tmp_path):
    narrow = DynamicsReward(3, 2, k=2, width=0.25)
    assert narrow.disc.delta_branch.linear_layers()[0].weight.shape == (2, 3, 64)
    narrow.save(tmp_path / "r.pt")
    loaded = DynamicsReward.load(tmp_path / "r.pt")
    assert loaded.disc.width == 0.25
    obs, act, cands = torch.randn(4, 3), torch.randn(4, 2), torch.randn(4, 5, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(obs, act, cands), narrow(obs, act, cands))
    assert loaded.thin(1).disc.width == 0.25


def test_wrong_kind_of_file_is_refused(tmp_path, tiny_ensemble):
    tiny_ensemble.save(tmp_path / "e.pt")
    with pytest.raises(ValueError, match="morec train-reward"):
        DynamicsReward.load(tmp_path / "e.pt")


def test_learned_reward_prefers_accurate_candidates_and_separates_real_from_model(
        tiny_ensemble, tiny_reward, pendulum_eval_data):
    model = FilteredDynamics(TorchDynamics(tiny_ensemble), TorchReward(tiny_reward), FilterConfig())
    scale = pendulum_eval_data.observations.std(0)
    m = candidate_metrics(model, tiny_reward, pendulum_eval_data, 500, scale)
    assert m["rank_corr_score"] > 0.05
    assert m["onestep_error_selected"] < m["onestep_error_random_candidate"]
    assert m["auc_score_real_vs_model"] > 0.55


def test_selecting_snapshots_equals_a_reward_built_from_them():
    snaps = _random_snapshots(4)
    full = DynamicsReward.from_snapshots(snaps, 3, 2)
    obs, act, cands = torch.randn(4, 3), torch.randn(4, 2), torch.randn(4, 6, 3)
    torch.testing.assert_close(full.select([1, 3])(obs, act, cands),
                               DynamicsReward.from_snapshots([snaps[1], snaps[3]], 3, 2)(obs, act, cands))


def test_thinning_keeps_the_newest_snapshot_and_spreads_the_rest():
    full = DynamicsReward.from_snapshots(_random_snapshots(9), 3, 2)
    obs, act, cands = torch.randn(2, 3), torch.randn(2, 2), torch.randn(2, 4, 3)
    torch.testing.assert_close(full.thin(3)(obs, act, cands), full.select([0, 4, 8])(obs, act, cands))
    torch.testing.assert_close(full.thin(1)(obs, act, cands), full.select([8])(obs, act, cands))
    assert full.thin(20) is full


def test_distilled_reward_scores_like_its_snapshot_history_with_one_snapshot(tiny_reward, tiny_ensemble,
                                                                             pendulum_data, pendulum_eval_data, rng):
    from morec.dynamics_reward import DistillConfig, distill_dynamics_reward

    assert tiny_reward.num_snapshots > 1
    student = distill_dynamics_reward(tiny_reward, pendulum_data, tiny_ensemble,
                                      DistillConfig(steps=300, batch_size=128), progress=False)
    assert student.num_snapshots == 1
    # Held-out pairs, with the candidates the filter would score for them.
    model = FilteredDynamics(TorchDynamics(tiny_ensemble), TorchReward(tiny_reward), FilterConfig())
    obs, act = pendulum_eval_data.observations[:500], pendulum_eval_data.actions[:500]
    cands = model.candidates(obs, act, rng)[0][..., :-1]
    teacher_r, student_r = (TorchReward(m).score(obs, act, cands) for m in (tiny_reward, student))
    assert np.abs(student_r - teacher_r).mean() < 0.1 * teacher_r.std() + 0.02
    assert np.corrcoef(student_r.ravel(), teacher_r.ravel())[0, 1] > 0.9
    assert 0.31 <= student_r.min() and student_r.max() <= 1.32


# ---- training options (all off by default) --------------------------------------------------------------

# 100 iterations: two snapshots and one log row.
QUICK = dict(iterations=100, batch_size=64, snapshot_every=50, snapshot_stride=1, calibration_size=128)


@pytest.mark.parametrize("option", [
    dict(delta_scaling="delta"),
    dict(gradient_penalty=10.0),
    dict(input_noise=0.1),
    dict(multistep_negatives=0.5, multistep_refresh=30),
    dict(delta_scaling="delta", gradient_penalty=1.0, input_noise=0.05, noise_negatives=0.25,
         multistep_negatives=0.25, multistep_horizon=3, multistep_refresh=7),
    dict(generator_update="policy_gradient", multistep_negatives=0.5, multistep_horizon=5, multistep_refresh=10),
    dict(pair_ranking=1.0, pair_candidates=4),
])
def test_each_training_option_trains_a_reward(option, pendulum_data, tiny_ensemble, tmp_path):
    import csv

    from morec.dynamics_reward import RewardConfig, train_dynamics_reward

    cfg = RewardConfig(**QUICK, **option)
    reward = train_dynamics_reward(pendulum_data, tiny_ensemble, cfg, log_csv=tmp_path / "log.csv", progress=False)
    assert reward.num_snapshots == 2 and reward.metadata["config"] == dataclasses.asdict(cfg)
    obs, act = torch.from_numpy(pendulum_data.observations[:50]), torch.from_numpy(pendulum_data.actions[:50])
    with torch.no_grad():
        r = reward(obs, act, torch.from_numpy(pendulum_data.next_observations[:50]).unsqueeze(1))
    assert torch.isfinite(r).all()
    with open(tmp_path / "log.csv") as f:
        row = {k: float(v) for k, v in next(csv.DictReader(f)).items()}
    assert np.isfinite(row["d_loss"])
    assert (row["grad_penalty"] > 0) == (cfg.gradient_penalty > 0)
    assert np.isfinite(row["logit_multistep"]) == (cfg.multistep_negatives > 0)
    assert np.isfinite(row["pair_rank"]) == (cfg.pair_ranking > 0)


def test_options_are_checked():
    from morec.dynamics_reward import RewardConfig

    for bad in (dict(delta_scaling="position"), dict(noise_negatives=0.6, multistep_negatives=0.5),
                dict(gradient_penalty=-1.0), dict(multistep_horizon=0), dict(calibrate_on="nothing"),
                dict(generator_update="evolution", multistep_negatives=0.5),
                dict(generator_update="policy_gradient"),  # its rollouts are the multistep negatives: none here
                dict(pair_ranking=-1.0), dict(pair_candidates=0)):
        with pytest.raises(ValueError):
            RewardConfig(**bad)


def test_delta_scaler_fits_the_state_changes_and_travels_with_the_reward(pendulum_data, tiny_ensemble, tmp_path):
    from morec.dynamics_reward import DistillConfig, RewardConfig, distill_dynamics_reward, train_dynamics_reward
    from morec.export import export_dynamics_reward
    from morec.runtime import OnnxReward

    reward = train_dynamics_reward(pendulum_data, tiny_ensemble, RewardConfig(**QUICK, delta_scaling="delta"),
                                   progress=False)
    change = pendulum_data.next_observations - pendulum_data.observations
    np.testing.assert_allclose(reward.disc.delta_scaler.mean.numpy(), change.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(reward.disc.delta_scaler.std.numpy(), change.std(0), rtol=1e-4)
    # The branch sees standardised changes, not changes scaled like states.
    obs, act = torch.from_numpy(pendulum_data.observations), torch.from_numpy(pendulum_data.actions)
    _, delta = reward.disc.scaled_inputs(obs, act, torch.from_numpy(pendulum_data.next_observations).unsqueeze(1))
    np.testing.assert_allclose(delta[:, 0].std(0).numpy(), 1.0, rtol=1e-3)

    reward.save(tmp_path / "r.pt")
    loaded = DynamicsReward.load(tmp_path / "r.pt")
    assert loaded.disc.delta_scaling == "delta"
    torch.testing.assert_close(loaded.disc.delta_scaler.std, reward.disc.delta_scaler.std)
    assert loaded.thin(1).disc.delta_scaling == "delta"
    student = distill_dynamics_reward(reward, pendulum_data, tiny_ensemble, DistillConfig(steps=2), progress=False)
    torch.testing.assert_close(student.disc.delta_scaler.mean, reward.disc.delta_scaler.mean)

    export_dynamics_reward(loaded, tmp_path / "r.onnx")  # raises on a parity error
    rng = np.random.default_rng(0)
    o, a = pendulum_data.observations[:40], pendulum_data.actions[:40]
    cands = pendulum_data.next_observations[:40, None] + 0.02 * rng.standard_normal((40, 10, 4), dtype=np.float32)
    ours, theirs = OnnxReward(tmp_path / "r.onnx").score(o, a, cands), TorchReward(reward).score(o, a, cands)
    assert np.abs(ours - theirs).max() <= 1e-4 and theirs.std() > 0


def test_a_reward_saved_before_the_delta_option_loads_as_state_scaled(tmp_path, tiny_reward):
    tiny_reward.save(tmp_path / "r.pt")
    state = torch.load(tmp_path / "r.pt", weights_only=False)
    del state["delta_scaling"]
    torch.save(state, tmp_path / "old.pt")
    loaded = DynamicsReward.load(tmp_path / "old.pt")
    assert loaded.disc.delta_scaling == "state" and loaded.disc.delta_scaler is None
    assert not any("delta_scaler" in key for key in tiny_reward.state_dict())


def test_gradient_penalty_is_zero_at_gamma_zero_and_grows_with_gamma():
    from morec.dynamics_reward import gradient_penalty

    torch.manual_seed(0)
    disc = Discriminator(3, 2)
    obs, act, nxt = torch.randn(16, 3), torch.randn(16, 2), torch.randn(16, 3)
    assert gradient_penalty(disc, obs, act, nxt, 0.0).item() == 0.0
    small, large = gradient_penalty(disc, obs, act, nxt, 1.0), gradient_penalty(disc, obs, act, nxt, 4.0)
    assert small.item() > 0
    torch.testing.assert_close(large, 4 * small)
    # It trains D: its gradient reaches the weights (the input gradient is part of the graph). In a ReLU net the
    # input gradient does not depend on the biases, so only the weights are checked.
    large.backward()
    weights = [layer.weight for net in (disc.sa_branch, disc.delta_branch, disc.head) for layer in net.linear_layers()]
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in weights)
    # The same penalty by hand: finite differences of D in its scaled inputs, for one transition.
    sa, delta = disc.scaled_inputs(obs[:1], act[:1], nxt[:1, None])
    x = torch.cat([sa[0], delta[0, 0]]).double()
    with torch.no_grad():
        d = lambda v: disc.logits(v[:5].float()[None], v[5:].float()[None, None]).double().item()  # noqa: E731
        grad = np.array([(d(x + 1e-3 * e) - d(x - 1e-3 * e)) / 2e-3 for e in torch.eye(8, dtype=torch.float64)])
    expected = 0.5 * 2.0 * (grad ** 2).sum()
    assert gradient_penalty(disc, obs[:1], act[:1], nxt[:1], 2.0).item() == pytest.approx(expected, rel=1e-2)


def test_multistep_negatives_follow_consecutive_actions_of_one_episode():
    from morec.dataset import Dataset
    from morec.dynamics_reward import open_loop_transitions
    from morec.ensemble import EnsembleConfig, EnsembleDynamics

    lengths = [3, 12, 7, 15, 4, 20]  # the episodes of 3 and 4 steps are too short for a 5-step rollout
    n = sum(lengths)
    ends = np.cumsum(lengths) - 1
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((n, 2), dtype=np.float32)
    data = Dataset(obs, np.arange(n, dtype=np.float32)[:, None], np.zeros(n), rng.standard_normal((n, 2)),
                   np.isin(np.arange(n), ends[::2]), np.isin(np.arange(n), ends[1::2]), {"env_id": "test"})
    episode = np.repeat(np.arange(len(lengths)), lengths)
    model = EnsembleDynamics(2, 1, EnsembleConfig(members=3, elites=2, hidden=(8,), weight_decay=(0.0, 0.0)))
    dynamics = FilteredDynamics(TorchDynamics(model), None, FilterConfig(mode="random_elite"))
    horizon, count = 5, 30
    s, a, s_next = (x.numpy() for x in open_loop_transitions(data, dynamics, horizon, count, rng))
    assert s.shape == s_next.shape == (horizon * count, 2) and a.shape == (horizon * count, 1)
    s, a, s_next = (s.reshape(horizon, count, 2), a.reshape(horizon, count).astype(int),
                    s_next.reshape(horizon, count, 2))
    np.testing.assert_array_equal(np.diff(a, axis=0), 1)  # consecutive recorded actions
    assert (episode[a[0]] == episode[a[-1]]).all()  # never across an episode end
    assert not np.isin(episode[a[0]], [0, 4]).any()
    np.testing.assert_array_equal(s[0], data.observations[a[0]])  # from recorded states
    np.testing.assert_array_equal(s[1:], s_next[:-1])  # then on the model's own states
    assert np.abs(s_next[-1] - data.next_observations[a[-1]]).max() > 0.1  # the model's, not the recorded ones


def _chain_data(n_episodes=20, length=30, seed=0):
    """1-d states, episodes of `length` steps, s' = s + a."""
    from morec.dataset import Dataset

    rng = np.random.default_rng(seed)
    n = n_episodes * length
    obs = rng.standard_normal((n, 1)).astype(np.float32)
    act = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    ends = np.arange(n) % length == length - 1
    return Dataset(obs, act, np.zeros(n, np.float32), obs + act, np.zeros(n, bool), ends, {"env_id": "test"})


def test_generator_rollouts_draw_each_step_from_the_member_they_record():
    from morec.dynamics_reward import generator_rollouts
    from morec.ensemble import EnsembleConfig, EnsembleDynamics

    data = _chain_data()
    model = EnsembleDynamics(1, 1, EnsembleConfig(members=3, elites=2, hidden=(8,), weight_decay=(0.0, 0.0)))
    torch.manual_seed(0)
    out = generator_rollouts(data, model, horizon=6, rollouts=10, rng=np.random.default_rng(0))
    assert out["obs"].shape == out["next_obs"].shape == (6, 10, 1) and out["members"].shape == (6, 10)
    torch.testing.assert_close(out["obs"][1:], out["next_obs"][:-1])  # on its own states after the first
    with torch.no_grad():
        mean, logvar = model(out["obs"].reshape(60, 1), out["act"].reshape(60, 1))
    rows, who = torch.arange(60), out["members"].reshape(-1)
    z = (out["next_obs"] - out["obs"]).reshape(60) - mean[who, rows, 0]
    z = z / torch.exp(0.5 * logvar[who, rows, 0])
    assert z.abs().max() < 6  # each drawn change is a plausible sample of the member named for it
    assert 0.5 < z.std() < 1.5
    assert not out["clipped"].any()
    tight = generator_rollouts(data, model, horizon=6, rollouts=10, rng=np.random.default_rng(0), clip=0.5)
    assert tight["next_obs"].abs().max() <= 0.5
    np.testing.assert_array_equal(tight["clipped"], (tight["next_obs"].abs() == 0.5).any(-1))


def test_policy_gradient_steps_move_the_generator_towards_what_the_reward_pays():
    """A reward that pays for a larger next state: REINFORCE must raise the generator's predicted change, and a
    reward that pays nothing must leave the mean where the NLL-free loss has no reason to move it."""
    from morec.dynamics_reward import generator_rollouts, policy_gradient_loss
    from morec.ensemble import EnsembleConfig, EnsembleDynamics

    data = _chain_data()
    torch.manual_seed(0)
    model = EnsembleDynamics(1, 1, EnsembleConfig(members=2, elites=2, hidden=(16,), weight_decay=(0.0, 0.0)))
    obs, act = torch.from_numpy(data.observations), torch.from_numpy(data.actions)
    with torch.no_grad():
        before = model(obs, act)[0][..., 0].mean().item()
    opt = torch.optim.Adam(model.mlp.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(60):
        pool = generator_rollouts(data, model, horizon=5, rollouts=64, rng=rng)
        rewards = (pool["next_obs"] - pool["obs"])[..., 0]  # pays for the change the generator drew
        loss = policy_gradient_loss(model, pool, rewards, discount=0.9, entropy_coef=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = model(obs, act)[0][..., 0].mean().item()
    assert after > before + 0.5


def test_policy_gradient_loss_weights_by_the_discounted_reward_to_go():
    """Two rollouts, two steps, one member with a fixed unit Gaussian: the gradient of the loss with respect to
    the predicted mean is -advantage * (s' - s - mean) / N per step, with the advantage from reward-to-go."""
    from morec.dynamics_reward import policy_gradient_loss

    class Fixed(torch.nn.Module):
        obs_dim = 1

        def __init__(self):
            super().__init__()
            self.mu = torch.nn.Parameter(torch.zeros(1))

        def forward(self, obs, act):
            mean = self.mu.expand(1, len(obs), 1)
            return torch.cat([mean, torch.zeros_like(mean)], -1), torch.zeros(1, len(obs), 2)

    model = Fixed()
    change = torch.tensor([[1.0, -1.0], [2.0, 0.0]])  # [H=2, N=2]
    pool = {"obs": torch.zeros(2, 2, 1), "act": torch.zeros(2, 2, 1), "next_obs": change[..., None],
            "members": torch.zeros(2, 2, dtype=torch.long), "clipped": torch.zeros(2, 2, dtype=torch.bool)}
    rewards = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    policy_gradient_loss(model, pool, rewards, discount=0.5, entropy_coef=0.0).backward()
    to_go = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    adv = (to_go - to_go.mean(1, keepdim=True)) / (to_go.std(1, keepdim=True) + 1e-8)
    expected = -(adv * change).sum() / 4
    assert model.mu.grad.item() == pytest.approx(expected.item(), rel=1e-5)
    model.mu.grad = None  # a clipped draw is not the Gaussian's sample: it carries no gradient
    policy_gradient_loss(model, {**pool, "clipped": torch.tensor([[True, False], [False, False]])}, rewards,
                         discount=0.5, entropy_coef=0.0).backward()
    assert model.mu.grad.item() == pytest.approx(expected.item() + (adv[0, 0] * change[0, 0]).item() / 4, rel=1e-5)
