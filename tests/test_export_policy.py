"""`morec export-policy`: an SB3 SAC actor as an ONNX graph that the controller's policy mode runs."""

import json

import numpy as np
import onnx
import pytest
import torch

from morec.cli import main
from morec.export import export_policy
from morec.runtime import ModelFileError, make_session
from morec.task_spec import load_task_spec


@pytest.fixture(scope="module")
def sac_zip(tmp_path_factory):
    """An untrained SAC on InvertedPendulum (actions in [-3, 3]), its output layer scaled up so that
    the actions span the range instead of sitting near 0."""
    from stable_baselines3 import SAC

    sac = SAC("MlpPolicy", load_task_spec("inverted_pendulum").make_env(), policy_kwargs={"net_arch": [32, 32]},
              seed=0, device="cpu")
    with torch.no_grad():
        sac.policy.actor.mu.weight.mul_(20.0)
    path = tmp_path_factory.mktemp("sac") / "sac.zip"
    sac.save(path)
    return path


@pytest.fixture(scope="module")
def exported(sac_zip):
    out = sac_zip.parent / "policy.onnx"
    assert main(["export-policy", "--policy", str(sac_zip), "--task", "inverted_pendulum", "--out", str(out)]) == 0
    return out


def observations(n, seed):
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, 4)).astype(np.float32)


def sb3_actions(sac_zip, obs):
    from morec.behavior import load_policy

    return load_policy(sac_zip).predict(obs, deterministic=True)[0]


def test_exported_policy_gives_sb3_deterministic_actions_in_env_units(exported, sac_zip):
    obs = observations(500, seed=1)
    session = make_session(exported, device="cpu")
    (got,) = session.run(None, {"obs": obs})
    expected = sb3_actions(sac_zip, obs)
    assert got.shape == (500, 1)
    assert np.abs(got - expected).max() <= 1e-4
    assert np.abs(got).max() > 1.5  # rescaled to the pendulum's [-3, 3], not left in tanh's [-1, 1]
    meta = json.loads({p.key: p.value for p in onnx.load(exported).metadata_props}["morec"])
    assert meta["kind"] == "policy" and meta["obs_dim"] == 4 and meta["act_dim"] == 1
    assert meta["env_id"] == "InvertedPendulum-v5" and meta["source"] == "sac.zip"


def test_onnx_policy_runs_the_export_in_batches(exported, sac_zip):
    from morec.runtime import OnnxPolicy

    policy = OnnxPolicy(exported, load_task_spec("inverted_pendulum"), "cpu", 1)
    obs = observations(20, seed=2)
    got = policy(obs)
    np.testing.assert_allclose(got, sb3_actions(sac_zip, obs), atol=1e-4)
    with pytest.raises(ModelFileError, match="export a policy for this task"):
        OnnxPolicy(exported, load_task_spec("halfcheetah"), "cpu", 1)


def test_exporting_for_another_task_fails_clearly_and_writes_nothing(sac_zip, tmp_path):
    out = tmp_path / "policy.onnx"
    with pytest.raises(ValueError, match=r"task halfcheetah \(HalfCheetah-v5\) has \(17,\) -> \(6,\)"):
        export_policy(sac_zip, out, load_task_spec("halfcheetah"))
    with pytest.raises(SystemExit, match="export a policy trained on this task"):
        main(["export-policy", "--policy", str(sac_zip), "--task", "hopper", "--out", str(out)])
    assert list(tmp_path.iterdir()) == []
