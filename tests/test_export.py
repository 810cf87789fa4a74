import json

import numpy as np
import onnx
import pytest

from morec.dynamics_reward import TorchReward
from morec.ensemble import TorchDynamics
from morec.export import export_dynamics_reward, export_ensemble
from morec.rollout import FilterConfig, FilteredDynamics
from morec.runtime import ModelFileError, OnnxDynamics, OnnxReward, make_session


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_ensemble, tiny_reward):
    out = tmp_path_factory.mktemp("onnx")
    export_ensemble(tiny_ensemble, out / "ensemble.onnx")
    export_dynamics_reward(tiny_reward, out / "dynamics_reward.onnx")
    return out


def _inputs(rng, n, data):
    idx = rng.integers(0, len(data), n)
    return data.observations[idx] + 0.1 * rng.standard_normal((n, 4), dtype=np.float32), data.actions[idx]


def test_onnx_ensemble_matches_torch(exported, tiny_ensemble, pendulum_data, rng):
    obs, act = _inputs(rng, 257, pendulum_data)
    for ours, theirs in zip(OnnxDynamics(exported / "ensemble.onnx").predict(obs, act),
                            TorchDynamics(tiny_ensemble).predict(obs, act)):
        assert np.abs(ours - theirs).max() <= 1e-4


def test_onnx_reward_matches_torch_for_any_candidate_count(exported, tiny_reward, pendulum_data, rng):
    obs, act = _inputs(rng, 33, pendulum_data)
    for c in (1, 10, 15):
        cands = obs[:, None] + 0.05 * rng.standard_normal((33, c, 4), dtype=np.float32)
        diff = np.abs(OnnxReward(exported / "dynamics_reward.onnx").score(obs, act, cands)
                      - TorchReward(tiny_reward).score(obs, act, cands)).max()
        assert diff <= 1e-4


def test_filtered_rollouts_agree_between_backends(exported, tiny_ensemble, tiny_reward, pendulum_data, rng):
    obs, act = _inputs(rng, 64, pendulum_data)
    actions = np.repeat(act[None], 5, axis=0)
    torch_model = FilteredDynamics(TorchDynamics(tiny_ensemble), TorchReward(tiny_reward), FilterConfig())
    onnx_model = FilteredDynamics(OnnxDynamics(exported / "ensemble.onnx"),
                                  OnnxReward(exported / "dynamics_reward.onnx"), FilterConfig())
    a = torch_model.rollout(obs, actions, np.random.default_rng(3))
    b = onnx_model.rollout(obs, actions, np.random.default_rng(3))
    assert np.abs(a["next_obs"] - b["next_obs"]).max() <= 1e-4
    assert np.abs(a["score"] - b["score"]).max() <= 1e-4


def test_exported_files_carry_their_metadata(exported, tiny_ensemble, tiny_reward):
    meta = json.loads({p.key: p.value for p in onnx.load(exported / "ensemble.onnx").metadata_props}["morec"])
    assert meta["kind"] == "ensemble" and meta["obs_dim"] == 4 and meta["act_dim"] == 1
    assert meta["elites"] == tiny_ensemble.elites.tolist()
    assert meta["env_id"] == "InvertedPendulum-v5"
    assert OnnxReward(exported / "dynamics_reward.onnx").meta["snapshots"] == tiny_reward.num_snapshots


def test_elites_only_graph_gives_the_full_ensembles_filtered_steps(tmp_path, tiny_ensemble, tiny_reward,
                                                                    pendulum_data, rng):
    meta = export_ensemble(tiny_ensemble.elites_only(), tmp_path / "ensemble.onnx")
    assert meta["members"] == len(tiny_ensemble.elites) and meta["trained_members"] == tiny_ensemble.cfg.members
    obs, act = _inputs(rng, 32, pendulum_data)
    steps = [FilteredDynamics(dynamics, TorchReward(tiny_reward)).step(obs, act, np.random.default_rng(3))
             for dynamics in (TorchDynamics(tiny_ensemble), OnnxDynamics(tmp_path / "ensemble.onnx"))]
    for key in ("next_obs", "score", "expected_obs"):
        np.testing.assert_allclose(getattr(steps[1], key), getattr(steps[0], key), rtol=1e-4, atol=1e-4)


def test_loading_errors_say_what_to_do(exported, tmp_path):
    with pytest.raises(ModelFileError, match="not found.*morec export"):
        OnnxDynamics(tmp_path / "missing.onnx")
    (tmp_path / "corrupt.onnx").write_bytes((exported / "ensemble.onnx").read_bytes()[:300])
    with pytest.raises(ModelFileError, match="not a loadable ONNX graph"):
        OnnxDynamics(tmp_path / "corrupt.onnx")
    with pytest.raises(ModelFileError, match="expected 'ensemble'"):
        OnnxDynamics(exported / "dynamics_reward.onnx")
    with pytest.raises(ModelFileError, match="obs_dim=4 but the task has obs_dim=17"):
        OnnxDynamics(exported / "ensemble.onnx", obs_dim=17)


def test_device_selection(exported):
    assert make_session(exported / "ensemble.onnx", device="cpu").get_providers() == ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ModelFileError, match="onnxruntime-gpu"):
            make_session(exported / "ensemble.onnx", device="cuda")
