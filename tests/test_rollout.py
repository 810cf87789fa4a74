import numpy as np
import pytest

from morec.rollout import FilterConfig, FilteredDynamics


class FakeDynamics:
    """Two elites (of three members) with known means and stds; reward dimension = -|s'|."""

    obs_dim, act_dim = 2, 1
    elites = np.array([0, 2])

    def __init__(self, std=0.0):
        self.std = std

    def predict(self, obs, act):
        offsets = np.array([0.0, 100.0, 1.0], np.float32)[:, None, None]
        nxt = obs[None] + act[None] + offsets  # [3, B, 2]
        mean = np.concatenate([nxt, -np.abs(nxt).sum(-1, keepdims=True)], -1)
        return mean, np.full_like(mean, self.std)


class DistanceReward:
    """Scores a candidate by closeness to a target state: a stand-in for r_D."""

    def __init__(self, target):
        self.target = np.asarray(target, np.float32)

    def score(self, obs, act, cands):
        return 1.3 - np.abs(cands - self.target).sum(-1)


def test_filter_keeps_the_highest_scoring_candidate(rng):
    obs, act = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
    model = FilteredDynamics(FakeDynamics(), DistanceReward([1.0, 1.0]), FilterConfig(samples_per_elite=2))
    step = model.step(obs, act, rng)
    np.testing.assert_allclose(step.next_obs, 1.0)  # elite 2's prediction, never member 1's
    np.testing.assert_allclose(step.score, 1.3)
    np.testing.assert_allclose(step.reward, -2.0)
    assert not step.terminal.any()


def test_every_mode_reports_the_elite_mean_prediction(rng):
    obs, act = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
    for mode in ("filter", "random_elite", "elite_mean"):
        model = FilteredDynamics(FakeDynamics(std=0.1), DistanceReward([1.0, 1.0]), FilterConfig(mode=mode))
        np.testing.assert_allclose(model.step(obs, act, rng).expected_obs, 0.5)  # mean of elites 0 and 2
        expected = model.candidates(obs, act, rng)[1]
        assert expected.shape == (4, 3)
        np.testing.assert_allclose(expected[:, :2], 0.5)


def test_candidates_are_two_samples_from_each_elite(rng):
    model = FilteredDynamics(FakeDynamics(std=0.1), DistanceReward([0, 0]), FilterConfig())
    cands = model.candidates(np.zeros((3, 2), np.float32), np.zeros((3, 1), np.float32), rng)[0]
    assert cands.shape == (3, 4, 3)
    near_zero = np.abs(cands[..., 0]) < 0.5
    assert (near_zero.sum(1) == 2).all()  # two from elite 0, two from elite 2
    with_means = FilteredDynamics(FakeDynamics(std=0.1), DistanceReward([0, 0]), FilterConfig(include_means=True))
    assert with_means.candidates(np.zeros((3, 2), np.float32), np.zeros((3, 1), np.float32), rng)[0].shape[1] == 6


def test_low_score_marks_the_transition_terminal(rng):
    obs, act = np.zeros((2, 2), np.float32), np.zeros((2, 1), np.float32)
    model = FilteredDynamics(FakeDynamics(), DistanceReward([5.0, 5.0]), FilterConfig(threshold=0.6))
    step = model.step(obs, act, rng)
    assert step.terminal.all() and (step.score < 0.6).all()


def test_task_termination_applies_to_the_chosen_state(rng):
    model = FilteredDynamics(FakeDynamics(), DistanceReward([1, 1]), FilterConfig(),
                             is_terminal=lambda s: s[:, 0] > 0.5)
    assert model.step(np.zeros((2, 2), np.float32), np.zeros((2, 1), np.float32), rng).terminal.all()


def test_softmax_selection_follows_the_temperature(rng):
    obs, act = np.zeros((4000, 2), np.float32), np.zeros((4000, 1), np.float32)
    # Scores 1.3 (elite 2) vs -0.7 (elite 0): probability of elite 2 = 1 / (1 + exp(-2 / T)).
    for temperature in (1.0, 5.0):
        cfg = FilterConfig(selection="softmax", temperature=temperature, samples_per_elite=1, threshold=0.0)
        step = FilteredDynamics(FakeDynamics(), DistanceReward([1, 1]), cfg).step(obs, act, rng)
        expected = 1 / (1 + np.exp(-2 / temperature))
        assert abs((step.next_obs[:, 0] == 1.0).mean() - expected) < 0.03


def test_unfiltered_modes_never_terminate_on_score(rng):
    obs, act = np.zeros((5, 2), np.float32), np.zeros((5, 1), np.float32)
    mean_step = FilteredDynamics(FakeDynamics(), None, FilterConfig(mode="elite_mean")).step(obs, act, rng)
    np.testing.assert_allclose(mean_step.next_obs, 0.5)  # mean of elites 0 and 2, member 1 ignored
    assert np.isnan(mean_step.score).all() and not mean_step.terminal.any()
    rand_step = FilteredDynamics(FakeDynamics(), None, FilterConfig(mode="random_elite")).step(obs, act, rng)
    assert set(np.unique(rand_step.next_obs)) <= {0.0, 1.0}


def test_candidates_are_clipped(rng):
    model = FilteredDynamics(FakeDynamics(), DistanceReward([0, 0]), FilterConfig(clip=25.0, threshold=-1e9))
    step = model.step(np.full((2, 2), 100.0, np.float32), np.zeros((2, 1), np.float32), rng)
    assert np.abs(step.next_obs).max() <= 25.0


def test_rollout_stacks_steps_and_tracks_alive(rng):
    model = FilteredDynamics(FakeDynamics(), DistanceReward([0.0, 0.0]), FilterConfig(threshold=0.5))
    out = model.rollout(np.zeros((3, 2), np.float32), np.zeros((4, 3, 1), np.float32), rng)
    assert out["next_obs"].shape == (4, 3, 2)
    # Step 1 stays at 0 (score 1.3); the states drift only if elite 2 is chosen, which it never is.
    assert out["alive"].all()
    far = FilteredDynamics(FakeDynamics(), DistanceReward([9.0, 9.0]), FilterConfig(threshold=0.5))
    out = far.rollout(np.zeros((3, 2), np.float32), np.zeros((4, 3, 1), np.float32), rng)
    assert out["alive"][0].all() and not out["alive"][1:].any()


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        FilterConfig(mode="best")
    with pytest.raises(ValueError, match="needs a dynamics reward"):
        FilteredDynamics(FakeDynamics(), None, FilterConfig(mode="filter"))
