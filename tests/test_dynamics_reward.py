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
    student = distill_dynamics_reward(tiny_reward, pendulum_data, tiny_ensemble, DistillConfig(steps=300, batch_size=128),
                                      progress=False)
    assert student.num_snapshots == 1
    # Held-out pairs, with the candidates the filter would score for them.
    model = FilteredDynamics(TorchDynamics(tiny_ensemble), TorchReward(tiny_reward), FilterConfig())
    obs, act = pendulum_eval_data.observations[:500], pendulum_eval_data.actions[:500]
    cands = model.candidates(obs, act, rng)[0][..., :-1]
    teacher_r, student_r = (TorchReward(m).score(obs, act, cands) for m in (tiny_reward, student))
    assert np.abs(student_r - teacher_r).mean() < 0.1 * teacher_r.std() + 0.02
    assert np.corrcoef(student_r.ravel(), teacher_r.ravel())[0, 1] > 0.9
    assert 0.31 <= student_r.min() and student_r.max() <= 1.32
