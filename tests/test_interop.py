"""Dataset interoperability: D4RL HDF5 files, Minari datasets (read, export, round trip), format dispatch."""

import sys
import warnings

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
from cli_check import error_of
from minari.data_collector import EpisodeBuffer

from morec.dataset import ARRAYS, Dataset, DatasetError
from morec.interop import export_minari, load_dataset, read_d4rl_hdf5, read_minari

AUTHOR = dict(author="morec tests", author_email="tests@example.invalid", code_permalink="tests/test_interop.py")


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    """Keep every Minari dataset of a test in its own folder, never in ~/.minari."""
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def episodic_dataset(lengths=(4, 3, 5), obs_dim=3, act_dim=2, env_id="MorecToy-v0", seed=0, **metadata) -> Dataset:
    """Contiguous episodes (next_observations[t] == observations[t + 1] inside an episode), as collected.

    The first episode ends in a terminal, the others in timeouts.
    """
    rng = np.random.default_rng(seed)
    parts = {k: [] for k in ARRAYS}
    for i, length in enumerate(lengths):
        states = rng.normal(size=(length + 1, obs_dim))
        parts["observations"].append(states[:-1])
        parts["next_observations"].append(states[1:])
        parts["actions"].append(rng.uniform(-1, 1, size=(length, act_dim)))
        parts["rewards"].append(rng.normal(size=length))
        last = np.arange(length) == length - 1
        parts["terminals"].append(last & (i == 0))
        parts["timeouts"].append(last & (i > 0))
    return Dataset(**{k: np.concatenate(v) for k, v in parts.items()}, metadata={"env_id": env_id, **metadata})


def assert_same_arrays(a: Dataset, b: Dataset):
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# ---- D4RL HDF5 ---------------------------------------------------------------------------------

def write_d4rl(path, arrays: dict, **attrs):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
        f.attrs.update(attrs)
    return path


def d4rl_arrays(ds: Dataset, with_next=True) -> dict:
    keys = ARRAYS if with_next else tuple(k for k in ARRAYS if k != "next_observations")
    arrays = {k: getattr(ds, k) for k in keys}
    arrays["terminals"] = arrays["terminals"].astype(np.float32)  # D4RL stores flags as floats
    arrays["rewards"] = arrays["rewards"][:, None]
    return arrays


def test_d4rl_with_next_observations_reads_every_transition(tmp_path):
    ds = episodic_dataset()
    path = write_d4rl(tmp_path / "d.hdf5", d4rl_arrays(ds), env_id="MorecToy-v0")
    read = read_d4rl_hdf5(path)
    assert_same_arrays(read, ds)
    assert read.metadata["env_id"] == "MorecToy-v0"
    assert read.metadata["source"] == f"d4rl-hdf5:{path}"


def test_d4rl_without_next_observations_pairs_rows_and_drops_episode_ends(tmp_path):
    n = 10
    obs = np.repeat(np.arange(n, dtype=np.float32)[:, None], 2, axis=1)  # row i holds i: easy to follow
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    timeouts[3] = True
    terminals[6] = True  # the last row (9) carries no flag: the file just stops
    path = write_d4rl(tmp_path / "d.h5", {"observations": obs, "actions": obs[:, :1] * 10,
                                           "rewards": np.arange(n) * 100.0, "terminals": terminals,
                                           "timeouts": timeouts}, env_name=b"Hopper-v5")
    read = read_d4rl_hdf5(path)
    kept = [0, 1, 2, 4, 5, 7, 8]
    np.testing.assert_array_equal(read.observations[:, 0], kept)
    np.testing.assert_array_equal(read.next_observations[:, 0], np.add(kept, 1))
    np.testing.assert_array_equal(read.actions[:, 0], np.multiply(kept, 10))
    np.testing.assert_array_equal(read.rewards, np.multiply(kept, 100))
    assert not read.terminals.any()
    np.testing.assert_array_equal(read.timeouts, [0, 0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(read.episode_ends(), [2, 4, 6])
    assert read.metadata["env_id"] == "Hopper-v5"  # from the env_name attribute, bytes decoded


def test_d4rl_env_id_argument_names_the_task(tmp_path):
    path = write_d4rl(tmp_path / "d.hdf5", d4rl_arrays(episodic_dataset()))
    with pytest.raises(DatasetError, match="pass env_id"):
        read_d4rl_hdf5(path)
    assert read_d4rl_hdf5(path, env_id="Walker2d-v5").metadata["env_id"] == "Walker2d-v5"


def test_d4rl_missing_key_is_named(tmp_path):
    arrays = d4rl_arrays(episodic_dataset())
    del arrays["timeouts"]
    path = write_d4rl(tmp_path / "d.hdf5", arrays, env_id="MorecToy-v0")
    with pytest.raises(DatasetError, match=r"missing arrays \['timeouts'\]"):
        read_d4rl_hdf5(path)


@pytest.mark.parametrize("with_next", [True, False])
def test_d4rl_length_mismatch_is_named(tmp_path, with_next):
    arrays = d4rl_arrays(episodic_dataset(), with_next)
    arrays["actions"] = arrays["actions"][:-2]
    path = write_d4rl(tmp_path / "d.hdf5", arrays, env_id="MorecToy-v0")
    with pytest.raises(DatasetError, match="actions has 10 entries but observations has 12"):
        read_d4rl_hdf5(path)


@pytest.mark.parametrize("with_next", [True, False])
def test_d4rl_empty_file_gives_dataset_error(tmp_path, with_next):
    arrays = {k: v[:0] for k, v in d4rl_arrays(episodic_dataset(), with_next).items()}
    path = write_d4rl(tmp_path / "d.hdf5", arrays, env_id="MorecToy-v0")
    with pytest.raises(DatasetError, match=r"d\.hdf5: dataset is empty"):
        read_d4rl_hdf5(path)


def test_d4rl_non_hdf5_file_gives_dataset_error(tmp_path):
    path = tmp_path / "d.hdf5"
    path.write_text("not hdf5")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        read_d4rl_hdf5(path)


def test_d4rl_non_finite_values_name_the_file(tmp_path):
    arrays = d4rl_arrays(episodic_dataset())
    arrays["rewards"][2] = np.nan
    path = write_d4rl(tmp_path / "d.hdf5", arrays, env_id="MorecToy-v0")
    with pytest.raises(DatasetError, match=r"d\.hdf5: rewards contains non-finite values"):
        read_d4rl_hdf5(path)


# ---- Minari ------------------------------------------------------------------------------------

def test_minari_export_round_trip_preserves_arrays_and_metadata(minari_root):
    ds = episodic_dataset(behavior="medium", seeds=[0, 1])
    ds.save(minari_root.parent / "d.npz")  # file-format keys (fingerprint, ...) must not travel along
    target = export_minari(ds, "morec/toy/medium-v0", **AUTHOR)
    assert target == minari_root / "morec/toy/medium-v0"

    read = read_minari("morec/toy/medium-v0")
    assert_same_arrays(read, ds)
    assert read.fingerprint() == ds.fingerprint()
    assert read.metadata["env_id"] == "MorecToy-v0"
    assert read.metadata["behavior"] == "medium" and read.metadata["seeds"] == [0, 1]
    assert read.metadata["source"] == "minari:morec/toy/medium-v0"
    assert "fingerprint" not in read.metadata

    stored = minari.load_dataset("morec/toy/medium-v0")  # readable by plain Minari, with the env spec set
    assert stored.total_episodes == 3 and stored.total_steps == 12
    assert stored.env_spec.id == "MorecToy-v0"
    assert_same_arrays(read_minari(target), ds)  # by directory too
    assert_same_arrays(read_minari(target / "data"), ds)


def test_minari_export_takes_spaces_from_a_registered_env(minari_root):
    ds = episodic_dataset(obs_dim=4, act_dim=1, env_id="InvertedPendulum-v5")
    export_minari(ds, "pendulum-v0", **AUTHOR)
    stored = minari.load_dataset("pendulum-v0")
    np.testing.assert_array_equal(stored.action_space.high, [3.0])  # the env's real bounds
    assert stored.env_spec.max_episode_steps == 1000
    assert_same_arrays(read_minari("pendulum-v0"), ds)


def test_minari_export_rejects_data_of_another_shape_than_the_env(minari_root):
    with pytest.raises(DatasetError, match=r"InvertedPendulum-v5 has observation/action shapes \(4,\)/\(1,\)"):
        export_minari(episodic_dataset(env_id="InvertedPendulum-v5"), "wrong-v0", **AUTHOR)
    assert not (minari_root / "wrong-v0").exists()


def test_minari_export_keeps_an_env_id_that_is_no_gymnasium_id(minari_root):
    ds = episodic_dataset(env_id="toy task")
    export_minari(ds, "odd-v0", **AUTHOR)
    assert minari.load_dataset("odd-v0").env_spec is None
    assert read_minari("odd-v0").metadata["env_id"] == "toy task"


def test_minari_export_refuses_discontinuous_episodes(minari_root):
    ds = episodic_dataset()
    shuffled = ds.subset(np.array([0, 2, 1, 3]))  # one episode, rows out of order
    with pytest.raises(DatasetError, match="transition 0: next_observations differs"):
        export_minari(shuffled, "shuffled-v0", **AUTHOR)
    assert not (minari_root / "shuffled-v0").exists()


def test_minari_export_refuses_to_overwrite(minari_root):
    export_minari(episodic_dataset(), "twice-v0", **AUTHOR)
    with pytest.raises(FileExistsError, match="twice-v0 already exists"):
        export_minari(episodic_dataset(seed=1), "twice-v0", **AUTHOR)
    assert_same_arrays(read_minari("twice-v0"), episodic_dataset())


def create_plain_minari(dataset_id, episodes, action_space=None):
    """A Minari dataset written by Minari alone (no env spec), as other tools would make it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari's advice to name an env spec: leaving it out is the point
        return minari.create_dataset_from_buffers(
            dataset_id, episodes, observation_space=gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
            action_space=action_space or gym.spaces.Box(-1, 1, (2,), np.float32),
            algorithm_name="random", description="test data", **AUTHOR)


def plain_episode(length, terminated, seed):
    rng = np.random.default_rng(seed)
    flags = np.zeros(length, bool)
    flags[-1] = terminated
    return EpisodeBuffer(observations=rng.normal(size=(length + 1, 3)).astype(np.float32),
                         actions=rng.uniform(-1, 1, size=(length, 2)).astype(np.float32),
                         rewards=rng.normal(size=length), terminations=flags, truncations=np.zeros(length, bool))


def test_minari_read_of_foreign_dataset_closes_unflagged_episodes(minari_root):
    episodes = [plain_episode(4, True, 0), plain_episode(3, False, 1), plain_episode(2, False, 2)]
    create_plain_minari("foreign-v0", episodes)
    with pytest.raises(DatasetError, match="no env spec; pass env_id"):
        read_minari("foreign-v0")
    read = read_minari("foreign-v0", env_id="MorecToy-v0")
    assert len(read) == 9 and read.metadata["env_id"] == "MorecToy-v0"
    np.testing.assert_array_equal(read.observations[4:7], episodes[1].observations[:-1])
    np.testing.assert_array_equal(read.next_observations[4:7], episodes[1].observations[1:])
    np.testing.assert_allclose(read.rewards[7:], episodes[2].rewards.astype(np.float32))
    np.testing.assert_array_equal(read.episode_ends(), [3, 6, 8])
    np.testing.assert_array_equal(np.flatnonzero(read.terminals), [3])
    np.testing.assert_array_equal(np.flatnonzero(read.timeouts), [6, 8])


def test_minari_read_rejects_non_box_spaces(minari_root):
    episode = plain_episode(3, True, 0)
    discrete = EpisodeBuffer(observations=episode.observations, actions=np.array([0, 1, 1]), rewards=episode.rewards,
                             terminations=episode.terminations, truncations=episode.truncations)
    create_plain_minari("discrete-v0", [discrete], action_space=gym.spaces.Discrete(2))
    with pytest.raises(DatasetError, match="action space is Discrete\\(2\\); morec reads only flat Box spaces"):
        read_minari("discrete-v0", env_id="MorecToy-v0")


def test_minari_unknown_id_says_where_it_looked(minari_root):
    with pytest.raises(FileNotFoundError, match="MINARI_DATASETS_PATH"):
        read_minari("nowhere/nothing-v0")


def test_minari_directory_without_a_dataset_gives_dataset_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not readable"):
        read_minari(tmp_path / "empty")


def test_missing_minari_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` fail
    with pytest.raises(ImportError, match="pip install minari"):
        read_minari("anything-v0")


# ---- dispatch ----------------------------------------------------------------------------------

def test_load_dataset_dispatches_on_the_source(tmp_path, minari_root):
    ds = episodic_dataset()
    npz = ds.save(tmp_path / "d.npz")
    hdf5 = write_d4rl(tmp_path / "d.hdf5", d4rl_arrays(ds), env_id="MorecToy-v0")
    target = export_minari(ds, "dispatch-v0", **AUTHOR)
    for source in (npz, str(npz), hdf5, "dispatch-v0", target):
        assert_same_arrays(load_dataset(source), ds)
    assert load_dataset(hdf5).metadata["source"].startswith("d4rl-hdf5:")
    assert load_dataset(target).metadata["source"] == "minari:dispatch-v0"


def test_load_dataset_passes_env_id_and_checks_it_against_npz(tmp_path):
    ds = episodic_dataset()
    hdf5 = write_d4rl(tmp_path / "d.hdf5", d4rl_arrays(ds))
    assert load_dataset(hdf5, env_id="Hopper-v5").metadata["env_id"] == "Hopper-v5"
    npz = ds.save(tmp_path / "d.npz")
    assert load_dataset(npz, env_id="MorecToy-v0").metadata["env_id"] == "MorecToy-v0"
    with pytest.raises(DatasetError, match="holds data of MorecToy-v0, not Hopper-v5"):
        load_dataset(npz, env_id="Hopper-v5")


def test_load_dataset_tells_formats_apart_by_content_not_name(tmp_path):
    ds = episodic_dataset()
    npz = ds.save(tmp_path / "d.npz").rename(tmp_path / "morec_data.bin")
    hdf5 = write_d4rl(tmp_path / "d4rl.dat", d4rl_arrays(ds), env_id="MorecToy-v0")
    assert_same_arrays(load_dataset(npz), ds)
    assert_same_arrays(load_dataset(hdf5), ds)


@pytest.mark.parametrize("content, says", [(b"col_a,col_b\n1,2\n", "a text file beginning 'col_a,col_b'"),
                                           (np.random.default_rng(0).bytes(4096), "binary data beginning")])
def test_load_dataset_names_a_file_that_is_no_dataset(tmp_path, content, says):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="not a readable morec dataset, D4RL HDF5 file or Minari dataset") as err:
        load_dataset(path)
    assert says in str(err.value)


def test_load_dataset_of_a_missing_file_is_not_taken_for_a_minari_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="morec collect"):
        load_dataset(tmp_path / "absent.npz")
    with pytest.raises(FileNotFoundError, match=r"absent\.hdf5 not found"):
        load_dataset(tmp_path / "absent.hdf5")


# ---- the command line reads every format -------------------------------------------------------

def policy_argv(data, tmp_path, *extra):
    """train-policy with a level its task has no settings for: it fails right after the data is read and its task
    found."""
    return ["train-policy", "--bundle", "models/inverted_pendulum", "--data", str(data), "--level", "expert",
            "--out", str(tmp_path / "run"), *extra]


def pendulum_data() -> Dataset:
    from morec.collect import rollout_dataset
    from morec.task_spec import load_task_spec

    return rollout_dataset(load_task_spec("inverted_pendulum"), None, 60, 0, "random", progress=False)


def test_training_commands_read_d4rl_and_minari_datasets(tmp_path, capsys, minari_root):
    ds = pendulum_data()
    sources = [write_d4rl(tmp_path / "d.hdf5", d4rl_arrays(ds), env_id="InvertedPendulum-v5"),
               export_minari(ds, "pendulum-cli-v0", **AUTHOR), "pendulum-cli-v0"]
    for source in sources:
        assert "inverted_pendulum.yaml" in error_of(policy_argv(source, tmp_path), capsys), source
    unnamed = write_d4rl(tmp_path / "unnamed.hdf5", d4rl_arrays(ds))
    assert "--env-id" in error_of(policy_argv(unnamed, tmp_path), capsys)
    assert "inverted_pendulum.yaml" in error_of(policy_argv(unnamed, tmp_path, "--env-id", "InvertedPendulum-v5"),
                                                 capsys)


@pytest.mark.parametrize("content", [b"observations,actions\n0.1,0.2\n", np.random.default_rng(1).bytes(4096)])
@pytest.mark.parametrize("command", ["train-dynamics", "train-reward", "train-policy", "diagnose"])
def test_a_file_that_is_no_dataset_fails_every_data_command_in_one_line(tmp_path, capsys, content, command):
    junk = tmp_path / "renamed.npz"
    junk.write_bytes(content)
    argv = {"train-policy": policy_argv(junk, tmp_path),
            "diagnose": ["diagnose", "--bundle", "models/inverted_pendulum", "--train-data", str(junk),
                         "--eval-data", f"x={junk}", "--out", str(tmp_path / "d.json")]
            }.get(command, [command, "--data", str(junk), "--bundle", str(tmp_path / "bundle")])
    line = error_of(argv, capsys)
    assert line.startswith(f"morec {command}: error: {junk}: not a readable morec dataset, D4RL HDF5 file or "
                           f"Minari dataset:") and "pickle" not in line
