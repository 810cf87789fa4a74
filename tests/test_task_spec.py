"""Task specs (sim/*.yaml): parsing, JointState -> observation, nominal == Gymnasium, perturbed variants."""

import shutil

import gymnasium as gym
import numpy as np
import pytest
import yaml

from morec.simulator import SimulatedRobot
from morec.task_spec import BaseState, TaskSpecError, available_tasks, load_task_spec, sim_dir

TASKS = ["halfcheetah", "inverted_pendulum", "hopper", "walker2d"]


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    trajectory = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        trajectory.append(obs)
    return np.array(trajectory)


def random_actions(spec, n, seed=0):
    return np.random.default_rng(seed).uniform(spec.action_low, spec.action_high, size=(n, spec.action_dim))


def test_shipped_specs_load_and_match_their_models():
    assert set(TASKS) <= set(available_tasks())
    for name in TASKS:
        spec = load_task_spec(name)
        env = spec.make_env()  # checks joints, actuators, ctrl ranges and dt against the MuJoCo model
        assert spec.obs_dim == env.observation_space.shape[0]
        assert spec.action_dim == env.action_space.shape[0]
        np.testing.assert_array_equal(spec.action_low, env.action_space.low)
        env.close()
    assert load_task_spec("HalfCheetah-v5").name == "halfcheetah"
    assert load_task_spec(sim_dir() / "hopper.yaml").env_id == "Hopper-v5"
    cheetah = load_task_spec("halfcheetah")
    assert cheetah.control_period == 0.05 and "rootx" not in cheetah.obs_positions
    assert load_task_spec("inverted_pendulum").control_period == 0.04


@pytest.mark.parametrize("name", TASKS)
def test_observation_from_joint_state_matches_gymnasium(name):
    spec = load_task_spec(name)
    env = spec.make_env()
    data = env.unwrapped.data
    obs, _ = env.reset(seed=1)
    order = np.random.default_rng(2).permutation(len(spec.joints))  # any order, matched by name
    names = [spec.joints[i] for i in order]
    for action in random_actions(spec, 30):
        np.testing.assert_array_equal(spec.observation_from_joint_state(names, data.qpos[order], data.qvel[order]), obs)
        obs, _, terminated, _, _ = env.step(action)
        if terminated:
            break


def test_missing_joints_are_named():
    spec = load_task_spec("halfcheetah")
    names = [j for j in spec.joints if j not in ("bshin", "ffoot")]
    with pytest.raises(ValueError, match=r"\['bshin', 'ffoot'\]"):
        spec.observation_from_joint_state(names, np.zeros(len(names)), np.zeros(len(names)))
    with pytest.raises(ValueError, match="9 names but 9 positions and 2 velocities"):
        spec.observation_from_joint_state(list(spec.joints), np.zeros(9), np.zeros(2))


@pytest.mark.parametrize("name", ["halfcheetah", "inverted_pendulum"])
def test_nominal_variant_is_plain_gymnasium(name):
    spec = load_task_spec(name)
    actions = random_actions(spec, 60)
    ours = rollout(spec.make_env("nominal"), 7, actions)
    theirs = rollout(gym.make(spec.env_id), 7, actions)
    np.testing.assert_array_equal(ours, theirs)


def test_real_variant_perturbs_the_model_and_the_dynamics():
    spec = load_task_spec("halfcheetah")
    real = spec.variant("real")
    nominal_model = spec.make_env("nominal").unwrapped.model
    real_model = spec.make_env(real).unwrapped.model
    np.testing.assert_allclose(real_model.body_mass, nominal_model.body_mass * real.body_mass_scale)
    np.testing.assert_allclose(real_model.geom_friction, nominal_model.geom_friction * real.geom_friction_scale)
    np.testing.assert_allclose(real_model.actuator_gear, nominal_model.actuator_gear * real.actuator_gear_scale)

    actions = random_actions(spec, 40)
    nominal = rollout(spec.make_env("nominal"), 3, actions)
    np.testing.assert_array_equal(rollout(spec.make_env(real), 3, actions)[0], nominal[0])  # same start
    for key in ("body_mass_scale", "geom_friction_scale", "actuator_gear_scale"):
        variant = spec.variant("nominal").replace(name=key, **{key: getattr(real, key)})
        perturbed = rollout(spec.make_env(variant), 3, actions)
        assert np.abs(perturbed[-1] - nominal[-1]).max() > 1e-3, f"{key} does not change the dynamics"


def test_reward_and_termination_agree_with_gymnasium():
    for name in TASKS:
        spec = load_task_spec(name)
        env = spec.make_env()
        obs, _ = env.reset(seed=4)
        for action in random_actions(spec, 200, seed=5):
            next_obs, reward, terminated, _, info = env.step(action)
            expected = reward
            if "x_velocity" in info:  # Gymnasium uses x displacement / dt; the spec uses next qvel of rootx
                expected = reward - info["x_velocity"] + next_obs[len(spec.obs_positions)]
            assert spec.reward(obs, action, next_obs) == pytest.approx(expected, abs=1e-9), name
            assert bool(spec.is_terminal(next_obs)) == terminated, name
            obs = next_obs
            if terminated:
                break
    cheetah = load_task_spec("HalfCheetah-v5")
    assert cheetah.normalized_score(12135.0) == pytest.approx(100.0)
    assert cheetah.normalized_score(-280.178953) == pytest.approx(0.0)
    pendulum = load_task_spec("inverted_pendulum")
    assert pendulum.normalized_score(1000.0) is None
    assert pendulum.is_terminal(np.array([0.0, np.nan, 0.0, 0.0]))
    assert pendulum.is_terminal(np.array([0.0, 0.21, 0.0, 0.0])) and not pendulum.is_terminal(np.array([0, 0.2, 0, 0]))


def test_simulated_robot_clips_delays_and_adds_noise():
    spec = load_task_spec("inverted_pendulum")
    nominal = spec.variant("nominal")
    commands = [np.array([c]) for c in (1.0, -2.0, 2.5, 0.5)]

    def states(variant, cmds, seed=0):
        robot = SimulatedRobot(spec, variant, seed)
        out = []
        for c in cmds:
            robot.step(c)
            out.append(np.concatenate(robot.joint_state()[:2]))
        return np.array(out)

    plain = states(nominal, commands)
    clipped = states(nominal, [np.clip(c * 10, -3.0, 3.0) for c in commands])
    np.testing.assert_array_equal(states(nominal, [c * 10 for c in commands]), clipped)
    delayed = states(nominal.replace(action_delay=1), commands)
    np.testing.assert_array_equal(delayed, states(nominal, [np.zeros(1)] + commands[:-1]))
    assert not np.array_equal(delayed, plain)
    noisy = states(nominal.replace(sensor_noise_std=0.01), commands)
    assert 0 < np.abs(noisy - plain).max() < 0.1
    np.testing.assert_array_equal(noisy, states(nominal.replace(sensor_noise_std=0.01), commands))  # seeded

    robot = SimulatedRobot(spec, nominal, seed=0, episode_length=3)
    for c in commands[:3]:
        robot.step(c)
    assert robot.done and robot.episode_steps == 3 and robot.episode_return == 3.0
    with pytest.raises(RuntimeError):
        robot.step(commands[0])
    robot.reset()
    assert robot.episode == 2 and not robot.done and robot.total_steps == 3


def write_spec(tmp_path, edit):
    doc = yaml.safe_load((sim_dir() / "inverted_pendulum.yaml").read_text())
    edit(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(colour="red"), r"colour: unknown key"),
    (lambda d: d["observation"]["positions"].append("elbow"), r"observation.positions: \['elbow'\] are not in joints"),
    (lambda d: d["variants"].pop("nominal"), r"'nominal' variant is required"),
    (lambda d: d["variants"]["real"].update(body_mass_scale=-1),
     r"variants.real.body_mass_scale: Input should be greater than 0, got -1"),
    (lambda d: d["variants"]["real"].update(action_delay=0.5),
     r"variants.real.action_delay: Input should be a valid integer"),
    (lambda d: d["actuators"][0].update(low=3.0), r"actuators\[0\].high: must exceed low"),
    (lambda d: d["termination"]["healthy"][0].update(index=9), r"exactly one of"),
    (lambda d: d.update(control_period="fast"), r"control_period: Input should be a valid number, got 'fast'"),
    (lambda d: d["variants"]["real"].update(frction=0.5),
     r"variants.real.frction: unknown key; valid keys: body_mass_scale, geom_friction_scale, "),
    (lambda d: d["termination"]["healthy"][0].update(high="0.2"),
     r"termination.healthy\[0\].high: Input should be a valid number, got '0.2'"),
    (lambda d: d["actuators"][0].pop("low"), r"actuators\[0\].low: Field required"),
])
def test_invalid_specs_are_rejected_clearly(tmp_path, edit, message):
    path = write_spec(tmp_path, edit)
    with pytest.raises(TaskSpecError, match=message) as e:
        load_task_spec(path)
    assert str(path) in str(e.value)


def test_spec_disagreeing_with_the_model_is_rejected(tmp_path):
    path = write_spec(tmp_path, lambda d: d["actuators"][0].update(joint="hinge"))
    with pytest.raises(TaskSpecError, match="actuator 0 drives joint 'slider', spec says 'hinge'"):
        load_task_spec(path).make_env()


def test_sim_dir_from_environment(tmp_path, monkeypatch):
    shutil.copy(sim_dir() / "inverted_pendulum.yaml", tmp_path / "pendulum_copy.yaml")
    monkeypatch.setenv("MOREC_SIM_DIR", str(tmp_path))
    assert available_tasks() == ["pendulum_copy"]
    assert load_task_spec("pendulum_copy").env_id == "InvertedPendulum-v5"
    with pytest.raises(TaskSpecError, match=r"unknown task 'halfcheetah'.*\['pendulum_copy'\]"):
        load_task_spec("halfcheetah")


ODOM_SPEC = sim_dir() / "robots" / "halfcheetah_odom.yaml"


def test_odometry_spec_gives_the_observations_of_all_joints():
    """Root joints left off /joint_states, base state from the simulated odometry: the same observations."""
    odom, plain = load_task_spec(ODOM_SPEC), load_task_spec("halfcheetah")
    assert odom.name == plain.name and odom.obs_dim == plain.obs_dim and odom.base.topic == "/odom"
    assert odom.state_joints == ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
    legs = [plain.joints.index(j) for j in odom.state_joints]
    robot = SimulatedRobot(odom, odom.variant("real").replace(sensor_noise_std=0.0), seed=3)
    pitch = []
    for action in random_actions(odom, 150, seed=4):
        position, velocity, _ = robot.joint_state()
        expected = plain.observation_from_joint_state(plain.joints, position, velocity)
        got = odom.observation_from_joint_state(odom.state_joints, position[legs], velocity[legs], robot.base_state())
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
        pitch.append(position[2])
        robot.step(action)
    assert 0.2 < np.abs(pitch).max() < np.pi  # it pitched, and never turned over (odometry's pitch wraps at +-pi)
    with pytest.raises(ValueError, match=r"takes \['rootx', 'rootz', 'rooty'\] from odometry on /odom"):
        odom.observation_from_joint_state(odom.state_joints, position[legs], velocity[legs])


def test_odometry_noise_is_small_and_leaves_joint_state_noise_as_it_was():
    odom = load_task_spec(ODOM_SPEC)
    noisy = odom.variant("noisy")

    def run(read_odometry):
        robot = SimulatedRobot(odom, noisy, seed=1)
        states, bases = [], []
        for action in random_actions(odom, 5):
            states.append(np.concatenate(robot.joint_state()[:2]))
            bases.append(robot.base_state() if read_odometry else None)
            robot.step(action)
        return np.array(states), bases

    states, bases = run(True)
    np.testing.assert_array_equal(run(False)[0], states)
    clean = SimulatedRobot(odom, noisy.replace(sensor_noise_std=0.0), seed=1)
    truth = clean.base_state()
    error = np.abs(np.concatenate([bases[0].position - truth.position, bases[0].linear - truth.linear,
                                   [bases[0].field("pitch") - truth.field("pitch")]]))
    assert 0 < error.max() < 0.1


def test_base_state_fields():
    angle = 2.5  # past pi/2: a robot on its back still reads its true pitch
    q = np.array([0.0, np.sin(angle / 2), 0.0, np.cos(angle / 2)])
    base = BaseState(np.array([1.0, 2.0, 3.0]), q, np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.5, 0.0]))
    assert base.field("pitch") == pytest.approx(angle)
    assert base.field("position.z") == 3.0 and base.field("angular.y") == 0.5
    # Forward in the base frame, pitched nose-down by 2.5 rad about y: x' = cos, z' = -sin.
    assert base.field("world_linear.x") == pytest.approx(np.cos(angle))
    assert base.field("world_linear.z") == pytest.approx(-np.sin(angle))
    assert base.field("world_angular.y") == pytest.approx(0.5)


def write_odom_spec(tmp_path, base):
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump({"extends": str(sim_dir() / "halfcheetah.yaml"), "base": base}))
    return path


@pytest.mark.parametrize("base, message", [
    ({"joints": {"rootx": {"position": "position.x", "velocity": "world_linaer.x"}}},
     r"base.joints.rootx.velocity: Input should be 'position.x', .* or 'world_angular.z', got 'world_linaer.x'"),
    ({"joints": {"rootx": {"velocity": "linear.x", "ofset": 0.1}}}, r"base.joints.rootx.ofset: unknown key"),
    ({"joints": {"rootq": {"position": "pitch"}}}, r"base.joints.rootq: 'rootq' is not in joints"),
    ({"joints": {"rooty": {"velocity": "angular.y"}}}, r"base.joints.rooty: the observation has its position"),
    ({"joints": {"rootx": {"velocity": "linear.x", "offset": "0.7"}}},
     r"base.joints.rootx.offset: Input should be a valid number, got '0.7'"),
    ({"topic": "/odom"}, r"base.joints: Field required"),
])
def test_invalid_base_sections_are_rejected_clearly(tmp_path, base, message):
    path = write_odom_spec(tmp_path, base)
    with pytest.raises(TaskSpecError, match=message) as e:
        load_task_spec(path)
    assert str(e.value).startswith(f"{path}: ")


def test_extends_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(TaskSpecError, match=r"a.yaml extends this file again \(a cycle\)"):
        load_task_spec(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(TaskSpecError, match=r"c.yaml: extends: .*nowhere.yaml does not exist"):
        load_task_spec(tmp_path / "c.yaml")
