"""MujocoDynamics: the task's simulator as a DynamicsBackend, checked against Gymnasium's env.step."""

import numpy as np
import pytest

from morec.mujoco_model import MujocoDynamics
from morec.planners import make_planner
from morec.rollout import FilterConfig, FilteredDynamics
from morec.task_spec import load_task_spec


def visited(task, steps, seed):
    """(obs, action, Gymnasium's next obs) of `steps` random-action steps, resetting at termination."""
    env = task.make_env()
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, _, terminated, _, _ = env.step(action)
        out.append((obs, action, next_obs))
        obs = env.reset()[0] if terminated else next_obs
    env.close()
    return [np.array(x) for x in zip(*out)]


@pytest.mark.parametrize("name", ["halfcheetah", "inverted_pendulum"])
def test_prediction_matches_gymnasium_step_and_task_reward(name):
    task = load_task_spec(name)
    model = MujocoDynamics(task)
    obs, act, gym_next = visited(task, 30, seed=1)
    for s, a, s_next in zip(obs, act, gym_next):
        mean, std = model.predict(s[None], a[None])
        assert mean.shape == std.shape == (1, 1, task.obs_dim + 1)
        np.testing.assert_allclose(mean[0, 0, :-1], s_next, rtol=0, atol=1e-6)
        assert mean[0, 0, -1] == pytest.approx(float(task.reward(s, a, s_next)), abs=1e-6)
        assert not std.any()


def test_a_batch_gives_the_same_rows_as_one_at_a_time():
    task = load_task_spec("halfcheetah")
    model = MujocoDynamics(task)
    obs, act, _ = visited(task, 40, seed=2)
    batch = model.predict(obs, act)[0][0]
    rows = np.concatenate([model.predict(s[None], a[None])[0][0] for s, a in zip(obs, act)])
    np.testing.assert_array_equal(batch, rows)


def test_variant_physics_change_the_prediction():
    task = load_task_spec("halfcheetah")
    obs, act, _ = visited(task, 5, seed=3)
    nominal = MujocoDynamics(task).predict(obs, act)[0]
    real = MujocoDynamics(task, "real").predict(obs, act)[0]
    assert np.abs(nominal - real).max() > 1e-3


def test_unfiltered_rollout_engine_follows_the_simulator():
    task = load_task_spec("inverted_pendulum")
    model = FilteredDynamics(MujocoDynamics(task), None, FilterConfig(mode="elite_mean"), task.is_terminal)
    env = task.make_env()
    obs, _ = env.reset(seed=4)
    actions = np.random.default_rng(4).uniform(-0.3, 0.3, (6, 1, 1))
    out = model.rollout(obs[None], actions, np.random.default_rng(0))
    for t, action in enumerate(actions):
        real, reward, terminated, _, _ = env.step(action[0])
        np.testing.assert_allclose(out["next_obs"][t, 0], real, atol=1e-5)
        assert out["reward"][t, 0] == pytest.approx(reward, abs=1e-5)
        assert out["terminal"][t, 0] == terminated
    assert np.isnan(out["score"]).all() and not out["disagreement"].any()


def test_mppi_through_the_simulator_balances_the_pendulum():
    # Zero commands drop the pole within 18-34 steps; an 8-step horizon keeps it up until the cart
    # reaches the end of its rail (about 80 steps), which the horizon does not foresee.
    task = load_task_spec("inverted_pendulum")
    model = FilteredDynamics(MujocoDynamics(task), None, FilterConfig(mode="elite_mean"), task.is_terminal)
    planner = make_planner("mppi", model, task, samples=32, horizon=8)
    env = task.make_env()
    obs, _ = env.reset(seed=5)
    for _ in range(50):
        obs, _, terminated, _, _ = env.step(planner.plan(obs).actions[0])
        assert not terminated
