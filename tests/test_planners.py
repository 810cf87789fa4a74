"""MPPI and CEM on a toy model whose optimal actions are known in closed form."""

import numpy as np
import pytest

from morec.planners import CEMConfig, MPPIConfig, evaluate, make_planner, policy_value
from morec.rollout import FilterConfig, FilteredDynamics
from morec.task_spec import load_task_spec

# A cart on a rail: obs = [position, velocity], the action sets the next velocity. The task reward
# r = velocity' - 0.25 a^2 + 1 (alive while |position'| < 10) is maximised by a = 2 at every step.
TOY_SPEC = """
name: toy
env_id: Toy-v0
control_period: 0.1
joints: [slider]
observation: {positions: [slider], velocities: [slider]}
actuators: [{name: push, joint: slider, low: -3.0, high: 3.0}]
reward: {alive: 1.0, forward_velocity: {joint: slider, weight: 1.0}, control_cost: 0.25}
termination: {healthy: [{position: slider, low: -10.0, high: 10.0}]}
variants: {nominal: {}}
"""


class ToyDynamics:
    """Two identical noiseless elites: position' = position + a, velocity' = a."""

    obs_dim, act_dim = 2, 1
    elites = np.array([0, 1])

    def predict(self, obs, act):
        nxt = np.stack([obs[:, 0] + act[:, 0], act[:, 0], np.zeros(len(obs))], axis=-1).astype(np.float32)
        mean = np.repeat(nxt[None], 2, axis=0)
        return mean, np.zeros_like(mean)


class TrustSmallPushes:
    """A stand-in for r_D that trusts transitions only for |a| <= 1.5."""

    def score(self, obs, act, candidates):
        trusted = np.abs(act[:, :1]) <= 1.5
        return np.broadcast_to(np.where(trusted, 1.3, 0.3), candidates.shape[:2]).astype(np.float32)


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_SPEC)
    return load_task_spec(path)


def filtered(task, threshold=0.6):
    return FilteredDynamics(ToyDynamics(), TrustSmallPushes(), FilterConfig(threshold=threshold, clip=None),
                            is_terminal=task.is_terminal)


def unfiltered(task):
    return FilteredDynamics(ToyDynamics(), None, FilterConfig(mode="elite_mean", clip=None),
                            is_terminal=task.is_terminal)


def test_evaluate_sums_discounted_task_rewards(toy, rng):
    actions = np.array([[[2.0], [2.0], [2.0]], [[0.0], [0.0], [0.0]]])
    returns = evaluate(unfiltered(toy), toy, np.zeros(2), actions, rng, discount=0.5)
    np.testing.assert_allclose(returns, [2.0 * 1.75, 1.0 * 1.75])  # per step 2 - 1 + 1 and 0 + 1


def test_evaluate_stops_at_task_termination_and_charges_the_penalty(toy, rng):
    # From position 8, pushing 3 leaves the rail at the first step: velocity 3 - 2.25, no alive bonus.
    actions = np.full((1, 4, 1), 3.0)
    returns = evaluate(unfiltered(toy), toy, np.array([8.0, 0.0]), actions, rng, termination_penalty=10.0)
    np.testing.assert_allclose(returns, [0.75 - 10.0])


def test_evaluate_drops_the_reward_of_an_untrusted_step(toy, rng):
    # Trusted, trusted, untrusted (|a| = 2 > 1.5): the third step's reward is replaced by the penalty.
    actions = np.array([[[1.0], [1.0], [2.0], [1.0]]])
    returns = evaluate(filtered(toy), toy, np.zeros(2), actions, rng, discount=1.0, termination_penalty=5.0)
    np.testing.assert_allclose(returns, [2 * 1.75 - 5.0])


# Settings under which each planner converges on the toy within a few hundredths.
SETTINGS = {"mppi": {"temperature": 0.1, "noise_std": 0.25}, "cem": {"noise_std": 0.5}}


@pytest.mark.parametrize("name", ["mppi", "cem"])
def test_planner_finds_the_optimal_action(toy, name):
    planner = make_planner(name, unfiltered(toy), toy, samples=256, horizon=5, iterations=8, seed=0, **SETTINGS[name])
    plan = planner.plan(np.zeros(2))
    assert plan.actions.shape == (5, 1) and plan.states.shape == (5, 2)
    assert abs(plan.actions[0, 0] - 2.0) < 0.25
    np.testing.assert_allclose(plan.states[0], [plan.actions[0, 0], plan.actions[0, 0]], rtol=1e-5)


@pytest.mark.parametrize("name", ["mppi", "cem"])
def test_filtered_planning_stays_where_the_model_is_trusted(toy, name):
    # Unfiltered the optimum is 2; the filter ends any sequence with |a| > 1.5, so the best is 1.5.
    planner = make_planner(name, filtered(toy), toy, samples=256, horizon=5, iterations=8, seed=0,
                           termination_penalty=5.0, **SETTINGS[name])
    first = planner.plan(np.zeros(2)).actions[0, 0]
    assert 0.5 < first <= 1.5


@pytest.mark.parametrize("name", ["mppi", "cem"])
def test_actions_stay_within_the_actuator_limits(toy, name):
    # Control nearly free: the unconstrained optimum (a = 1 / (2 * 0.0025) = 200) lies far outside [-3, 3].
    cheap = load_task_spec(toy.path)
    cheap = type(cheap)(**{**cheap.__dict__, "control_cost": 0.0025})
    planner = make_planner(name, unfiltered(cheap), cheap, samples=128, horizon=4, iterations=3, noise_std=2.0)
    actions = planner.plan(np.zeros(2)).actions
    assert actions.max() <= 3.0 and actions.min() >= -3.0
    assert actions[0, 0] > 2.5


def test_plans_are_deterministic_given_the_seed(toy):
    def run(seed):
        planner = make_planner("mppi", filtered(toy), toy, samples=64, horizon=4, seed=seed)
        return [planner.plan(np.array([0.1 * k, 0.0])).actions for k in range(3)]

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3)[0], run(4)[0])


def test_warm_start_shifts_the_previous_plan(toy):
    planner = make_planner("cem", unfiltered(toy), toy, samples=32, horizon=4, iterations=1)
    planner.mean = np.array([[1.0], [2.0], [3.0], [-1.0]], np.float32)
    # The first sample is the warm-started mean itself: sequence [2, 3, -1, 0] after one step.
    sampled = []
    planner._returns = lambda obs, actions: sampled.append(actions.copy()) or np.zeros(len(actions))
    planner.plan(np.zeros(2), elapsed=1)
    np.testing.assert_array_equal(sampled[0][0, :, 0], [2.0, 3.0, -1.0, 0.0])
    planner.mean = np.array([[1.0], [2.0], [3.0], [-1.0]], np.float32)
    planner.plan(np.zeros(2), elapsed=3)
    np.testing.assert_array_equal(sampled[1][0, :, 0], [-1.0, 0.0, 0.0, 0.0])


def test_bad_settings_are_rejected(toy):
    with pytest.raises(ValueError, match="elites"):
        CEMConfig(samples=10, elite_fraction=0.1)
    with pytest.raises(ValueError, match="temperature"):
        MPPIConfig(temperature=0.0)
    with pytest.raises(ValueError, match="planner"):
        make_planner("ilqr", unfiltered(toy), toy)


def test_prior_rollout_through_the_model_is_the_starting_mean(toy):
    # A state-dependent prior, a = 1 - 0.5 position, rolled through position' = position + a from 0;
    # a prior asking for more than the actuator gives is clipped.
    prior = lambda obs: np.where(obs[:, :1] < 5, 1.0 - 0.5 * obs[:, :1], 10.0)  # noqa: E731
    planner = make_planner("mppi", unfiltered(toy), toy, prior=prior, samples=16, horizon=4, noise_std=0.01)
    sampled, sample_returns = [], planner._sample_returns
    planner._sample_returns = lambda *args: sampled.append(sample_returns(*args)[0]) or (sampled[-1], np.zeros(16))
    planner.plan(np.zeros(2))
    np.testing.assert_allclose(sampled[0][0, :, 0], [1.0, 0.5, 0.25, 0.125])
    # The other sequences are drawn around the prior's actions, step by step.
    np.testing.assert_allclose(sampled[0][1:, :, 0], np.broadcast_to([1.0, 0.5, 0.25, 0.125], (15, 4)), atol=0.2)
    # Clipped to the actuator's 3; every sequence leaves the healthy range (|position| < 10) at the second
    # step, and the steps after that keep the centre.
    planner.plan(np.array([6.0, 0.0]))
    np.testing.assert_allclose(sampled[1][0, :, 0], [3.0, 3.0, 0.0, 0.0])


class CountingDynamics(ToyDynamics):
    calls = 0

    def predict(self, obs, act):
        self.calls += 1
        return super().predict(obs, act)


@pytest.mark.parametrize("name", ["mppi", "cem"])
def test_a_plan_around_a_prior_costs_one_model_call_per_horizon_step(toy, name):
    dynamics = CountingDynamics()
    model = FilteredDynamics(dynamics, None, FilterConfig(mode="elite_mean", clip=None), is_terminal=toy.is_terminal)
    planner = make_planner(name, model, toy, prior=lambda obs: np.ones((len(obs), 1)), samples=16, horizon=5)
    plan = planner.plan(np.zeros(2))
    assert dynamics.calls == 5 * planner.cfg.iterations
    # The predicted states are rolled out only when read, and do not change the next plan.
    np.testing.assert_allclose(plan.states[:, 0], np.cumsum(plan.actions[:, 0]), rtol=1e-5)
    assert dynamics.calls == 5 * planner.cfg.iterations + 5
    unread = make_planner(name, model, toy, prior=lambda obs: np.ones((len(obs), 1)), samples=16, horizon=5)
    unread.plan(np.zeros(2))
    np.testing.assert_array_equal(unread.plan(np.ones(2)).actions, planner.plan(np.ones(2)).actions)


def test_prior_guides_a_small_search_to_good_actions(toy):
    # Eight samples with little noise cannot travel from the centre (0) to the optimum (2); around a
    # prior that already acts well the search stays there.
    settings = dict(samples=8, horizon=4, noise_std=0.05, temperature=0.1, seed=0)
    alone = make_planner("mppi", unfiltered(toy), toy, **settings).plan(np.zeros(2)).actions[0, 0]
    guided = make_planner("mppi", unfiltered(toy), toy, prior=lambda obs: np.full((len(obs), 1), 1.9),
                          **settings).plan(np.zeros(2)).actions[0, 0]
    assert abs(alone) < 0.5 and abs(guided - 2.0) < 0.2


def test_evaluate_adds_the_discounted_terminal_value_of_sequences_still_alive(toy, rng):
    actions = np.array([[[2.0], [2.0]], [[3.0], [3.0]]])
    # From 0, pushing 2 twice stays on the rail and ends at position 4; from 7, pushing 3 leaves it at once.
    value = lambda obs: 100.0 + obs[:, 0]  # noqa: E731
    returns = evaluate(unfiltered(toy), toy, np.zeros(2), actions[:1], rng, discount=0.5, terminal_value=value)
    np.testing.assert_allclose(returns, [2.0 * 1.5 + 0.25 * (100.0 + 4.0)])
    ended = evaluate(unfiltered(toy), toy, np.array([7.0, 0.0]), actions[1:], rng, discount=0.5, terminal_value=value)
    np.testing.assert_allclose(ended, [0.75])  # left the rail at the first step: no terminal value


@pytest.mark.parametrize("name", ["mppi", "cem"])
def test_a_terminal_value_changes_a_short_sighted_choice(toy, name):
    # Over one step the best push is 2; a value that charges 10 per unit of distance from the origin
    # makes staying put best.
    settings = dict(samples=256, horizon=1, iterations=8, seed=0, **SETTINGS[name])
    myopic = make_planner(name, unfiltered(toy), toy, **settings).plan(np.zeros(2)).actions[0, 0]
    value = policy_value(lambda obs, act: -10.0 * np.abs(obs[:, 0]), lambda obs: np.zeros((len(obs), 1)))
    farsighted = make_planner(name, unfiltered(toy), toy, terminal_value=value,
                              **settings).plan(np.zeros(2)).actions[0, 0]
    assert abs(myopic - 2.0) < 0.25 and abs(farsighted) < 0.25
