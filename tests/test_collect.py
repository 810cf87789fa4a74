"""Behaviour policies and the D4RL-style data levels, on a few hundred SAC steps of InvertedPendulum."""

import json

import numpy as np
import pytest

from morec.behavior import SACConfig, pick_checkpoint, policy_from_spec, train_sac
from morec.cli import main
from morec.collect import SineGait, rollout_dataset
from morec.dataset import Dataset
from morec.task_spec import load_task_spec


@pytest.fixture(scope="module")
def behavior_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("behavior")
    cfg = SACConfig(total_steps=600, checkpoint_every=300, eval_episodes=2, learning_starts=200)
    train_sac(load_task_spec("inverted_pendulum"), out, cfg)
    return out


def test_training_records_every_checkpoint_with_its_return(behavior_dir):
    log = json.loads((behavior_dir / "checkpoints.json").read_text())
    assert [r["steps"] for r in log["checkpoints"]] == [300, 600]
    for record in log["checkpoints"]:
        assert (behavior_dir / record["policy"]).exists() and (behavior_dir / record["replay_buffer"]).exists()
        assert record["return_mean"] >= 1.0


def test_medium_is_the_checkpoint_closest_to_a_third_of_expert(behavior_dir):
    records = json.loads((behavior_dir / "checkpoints.json").read_text())["checkpoints"]
    best = max(records, key=lambda r: r["return_mean"])
    assert pick_checkpoint(behavior_dir, "expert") == best
    third = [abs(r["return_mean"] - best["return_mean"] / 3) for r in records]
    assert pick_checkpoint(behavior_dir, "medium") == records[int(np.argmin(third))]
    target = 3000.0
    closest = min(records, key=lambda r: abs(r["return_mean"] - target / 3))
    assert pick_checkpoint(behavior_dir, "medium", expert_return=target) == closest
    with pytest.raises(ValueError, match="unknown behaviour level"):
        pick_checkpoint(behavior_dir, "great")


@pytest.mark.parametrize("level", ["medium", "expert", "medium-replay", "medium-expert"])
def test_collect_writes_each_level_with_its_provenance(behavior_dir, tmp_path, level):
    out = tmp_path / f"{level}.npz"
    assert main(["collect", "--task", "inverted_pendulum", "--level", level, "--behavior", str(behavior_dir),
                 "--steps", "400", "--out", str(out)]) == 0
    data = Dataset.load(out)
    assert data.metadata["env_id"] == "InvertedPendulum-v5"
    assert data.metadata["command"].startswith("morec collect")
    assert level.split("-")[0] in data.metadata["policy"]
    if level == "medium-replay":  # the replay buffer up to the medium checkpoint (saved just before its last step)
        assert len(data) == pick_checkpoint(behavior_dir, "medium")["steps"] - 1
    else:
        assert len(data) == 400
    bounds = load_task_spec("inverted_pendulum")
    assert (data.actions >= bounds.action_low - 1e-6).all() and (data.actions <= bounds.action_high + 1e-6).all()
    # s' of a transition is s of the next one inside an episode.
    inside = ~(data.terminals | data.timeouts)[:-1]
    np.testing.assert_allclose(data.next_observations[:-1][inside], data.observations[1:][inside])


def test_same_seed_gives_the_same_data():
    task = load_task_spec("inverted_pendulum")
    a = rollout_dataset(task, None, 300, seed=3, policy_name="random", progress=False)
    b = rollout_dataset(task, None, 300, seed=3, policy_name="random", progress=False)
    assert a.fingerprint() == b.fingerprint()


def test_sine_gait_is_periodic_within_the_limits_and_differs_per_environment():
    task = load_task_spec("halfcheetah")
    gait = SineGait(task, seed=0, amplitude=(1.0, 1.0), frequency_hz=(1.0, 1.0))
    obs = np.zeros((3, task.obs_dim), np.float32)
    actions = np.stack([gait(obs) for _ in range(41)])  # [t, env, A]; period 1 s = 20 steps of 0.05 s
    assert actions.shape == (41, 3, task.action_dim)
    assert (actions >= task.action_low).all() and (actions <= task.action_high).all()
    np.testing.assert_allclose(actions[0], actions[20], atol=1e-5)
    np.testing.assert_allclose(actions[0], actions[40], atol=1e-5)
    assert not np.allclose(actions[:, 0], actions[:, 1])  # each environment its own phases
    np.testing.assert_allclose(actions[5, 0], np.sin(2 * np.pi * 0.25 + gait.params[2][0]), atol=1e-5)


def test_collect_sine_gait_on_a_perturbed_variant(tmp_path):
    nominal, heavy = tmp_path / "nominal.npz", tmp_path / "real.npz"
    for variant, out in (("nominal", nominal), ("real", heavy)):
        assert main(["collect", "--task", "inverted_pendulum", "--level", "sine", "--variant", variant,
                     "--steps", "200", "--seed", "4", "--out", str(out)]) == 0
    a, b = Dataset.load(nominal), Dataset.load(heavy)
    assert a.metadata["policy"] == "sine" and b.metadata["variant"] == "real"
    np.testing.assert_allclose(a.observations[0], b.observations[0])  # same seeds: same start and gait
    np.testing.assert_allclose(a.actions, b.actions)
    assert not np.allclose(a.next_observations, b.next_observations)  # but other physics
    with pytest.raises(SystemExit, match="no variant .nope.; variants"):  # one line, no traceback
        main(["collect", "--task", "inverted_pendulum", "--level", "sine", "--variant", "nope",
              "--steps", "10", "--out", str(tmp_path / "x.npz")])


def test_policy_descriptions_give_the_policies_they_name(behavior_dir):
    task = load_task_spec("inverted_pendulum")
    obs = np.zeros((3, task.obs_dim), np.float32)
    assert policy_from_spec("random", task) is None
    assert isinstance(policy_from_spec("sine", task), SineGait)
    checkpoint = str(next(behavior_dir.glob("sac_*.zip")))
    deterministic = policy_from_spec(checkpoint + ":deterministic", task)
    np.testing.assert_array_equal(deterministic(obs), deterministic(obs))
    sampled = policy_from_spec(checkpoint, task)
    assert not np.array_equal(sampled(obs), sampled(obs))  # it samples, as when it collected data
    with pytest.raises(ValueError, match="expected 'random'"):
        policy_from_spec("sac.pt", task)
    with pytest.raises(FileNotFoundError, match="not found"):
        policy_from_spec(str(behavior_dir / "missing.zip"), task)
