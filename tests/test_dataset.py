"""The Dataset container: validation, episode views, and the .npz file format (round trip, corruption, atomicity)."""

import json
import zipfile

import numpy as np
import pytest

from morec.dataset import ARRAYS, FORMAT_VERSION, Dataset, DatasetError


def make_dataset(n=12, obs_dim=3, act_dim=2, seed=0, **metadata) -> Dataset:
    rng = np.random.default_rng(seed)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    terminals[3] = n > 3
    timeouts[7 % n] = n > 7
    return Dataset(rng.normal(size=(n, obs_dim)), rng.normal(size=(n, act_dim)), rng.normal(size=n),
                   rng.normal(size=(n, obs_dim)), terminals, timeouts, {"env_id": "Toy-v0", **metadata})


def arrays_of(ds: Dataset) -> dict:
    return {k: getattr(ds, k) for k in ARRAYS}


# ---- validation --------------------------------------------------------------------------------

def test_arrays_are_converted_to_canonical_dtypes():
    ds = make_dataset()
    assert ds.observations.dtype == np.float32 and ds.next_observations.dtype == np.float32
    assert ds.terminals.dtype == bool and ds.timeouts.dtype == bool
    assert (len(ds), ds.obs_dim, ds.act_dim) == (12, 3, 2)


def test_rewards_of_shape_n_by_1_are_flattened():
    arrays = arrays_of(make_dataset())
    arrays["rewards"] = arrays["rewards"][:, None]
    assert Dataset(**arrays, metadata={"env_id": "Toy-v0"}).rewards.shape == (12,)


@pytest.mark.parametrize("name", ["actions", "rewards", "terminals", "timeouts"])
def test_mismatched_length_names_the_array(name):
    arrays = arrays_of(make_dataset())
    arrays[name] = arrays[name][:-1]
    with pytest.raises(DatasetError, match=f"{name} has 11 entries but observations has 12"):
        Dataset(**arrays, metadata={"env_id": "Toy-v0"})


def test_next_observations_of_other_shape_rejected():
    arrays = arrays_of(make_dataset())
    arrays["next_observations"] = arrays["next_observations"][:, :2]
    with pytest.raises(DatasetError, match="next_observations shape"):
        Dataset(**arrays, metadata={"env_id": "Toy-v0"})


@pytest.mark.parametrize("name", ["observations", "actions", "rewards", "next_observations"])
def test_non_finite_values_rejected_with_position(name):
    arrays = arrays_of(make_dataset())
    arrays[name] = arrays[name].copy()
    arrays[name][5] = np.nan if name != "actions" else np.inf
    with pytest.raises(DatasetError, match=f"{name} contains non-finite values \\(first at transition 5\\)"):
        Dataset(**arrays, metadata={"env_id": "Toy-v0"})


def test_one_dimensional_observations_rejected():
    arrays = arrays_of(make_dataset())
    arrays["observations"] = arrays["observations"][:, 0]
    with pytest.raises(DatasetError, match="must be 2-D"):
        Dataset(**arrays, metadata={"env_id": "Toy-v0"})


def test_missing_env_id_rejected():
    with pytest.raises(DatasetError, match="env_id"):
        Dataset(**arrays_of(make_dataset()), metadata={})


def test_empty_dataset_rejected():
    with pytest.raises(DatasetError, match="empty"):
        Dataset(np.zeros((0, 3)), np.zeros((0, 2)), [], np.zeros((0, 3)), [], [], {"env_id": "Toy-v0"})


# ---- episode views -----------------------------------------------------------------------------

def test_episode_ends_cover_terminals_timeouts_and_the_final_transition():
    ds = make_dataset()
    np.testing.assert_array_equal(ds.episode_ends(), [3, 7, 11])
    assert not ds.timeouts[-1]  # the view must not write the implicit end back into the data


def test_episode_returns_sum_each_episode():
    ds = make_dataset()
    r = ds.rewards.astype(np.float64)
    np.testing.assert_allclose(ds.episode_returns(), [r[:4].sum(), r[4:8].sum(), r[8:].sum()])


def test_concatenate_closes_each_part_with_a_timeout_but_keeps_terminals():
    a = make_dataset(n=5, seed=1)  # ends without a flag
    b_arrays = arrays_of(make_dataset(n=4, seed=2))
    b_arrays["terminals"][-1] = True  # ends in a terminal
    b = Dataset(**b_arrays, metadata={"env_id": "Toy-v0"})
    both = Dataset.concatenate([a, b], {"env_id": "Toy-v0", "note": "joined"})
    assert len(both) == 9 and both.metadata["note"] == "joined"
    np.testing.assert_array_equal(both.observations[5:], b.observations)
    assert both.timeouts[4] and not both.terminals[4]
    assert both.terminals[8] and not both.timeouts[8]
    np.testing.assert_array_equal(both.episode_ends(), [3, 4, 8])
    assert not a.timeouts[-1]  # the parts are left untouched


def test_concatenate_rejects_mixed_dimensions_and_nothing():
    with pytest.raises(DatasetError, match="different dimensions"):
        Dataset.concatenate([make_dataset(), make_dataset(obs_dim=4)], {"env_id": "Toy-v0"})
    with pytest.raises(DatasetError, match="empty list"):
        Dataset.concatenate([], {"env_id": "Toy-v0"})


def test_subset_selects_rows_and_copies_metadata():
    ds = make_dataset(note="x")
    sub = ds.subset(np.array([1, 4, 6]))
    np.testing.assert_array_equal(sub.actions, ds.actions[[1, 4, 6]])
    sub.metadata["note"] = "changed"
    assert ds.metadata["note"] == "x"


def test_fingerprint_tracks_content():
    ds = make_dataset()
    assert ds.fingerprint() == make_dataset().fingerprint()
    arrays = arrays_of(ds)
    arrays["timeouts"] = arrays["timeouts"].copy()
    arrays["timeouts"][0] = True
    assert Dataset(**arrays, metadata=ds.metadata).fingerprint() != ds.fingerprint()


# ---- files -------------------------------------------------------------------------------------

def test_save_load_round_trip_preserves_arrays_metadata_and_fingerprint(tmp_path):
    ds = make_dataset(behavior="medium", seed_list=[1, 2])
    path = ds.save(tmp_path / "sub" / "data.npz")
    loaded = Dataset.load(path)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(ds, name), err_msg=name)
        assert getattr(loaded, name).dtype == getattr(ds, name).dtype
    assert loaded.metadata["behavior"] == "medium" and loaded.metadata["seed_list"] == [1, 2]
    assert loaded.metadata["fingerprint"] == ds.fingerprint() == loaded.fingerprint()
    assert loaded.metadata["format_version"] == FORMAT_VERSION
    assert (loaded.metadata["transitions"], loaded.metadata["episodes"]) == (12, 3)


def test_save_requires_npz_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz"):
        make_dataset().save(tmp_path / "data.hdf5")


def test_load_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="morec collect"):
        Dataset.load(tmp_path / "absent.npz")


@pytest.fixture
def saved(tmp_path):
    return make_dataset().save(tmp_path / "data.npz")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "flip"])
def test_corrupt_file_gives_dataset_error(saved, damage):
    raw = saved.read_bytes()
    if damage == "truncate":
        saved.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        saved.write_bytes(b"this is not a dataset\n" * 20)
    elif damage == "empty":
        saved.write_bytes(b"")
    else:  # damage compressed payload bytes inside the zip, keeping its directory intact
        with zipfile.ZipFile(saved) as z:
            info = z.getinfo("observations.npy")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 20
        raw = bytearray(raw)
        raw[start:start + 40] = bytes(40)
        saved.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="not a readable morec dataset"):
        Dataset.load(saved)


def write_npz(path, metadata, drop=(), **replace):
    arrays = {k: v for k, v in {**arrays_of(make_dataset()), **replace}.items() if k not in drop}
    np.savez(path, metadata=np.array(json.dumps(metadata)), **arrays)
    return path


def test_missing_array_is_named(tmp_path):
    path = write_npz(tmp_path / "d.npz", {"format": "morec-dataset", "format_version": 1, "env_id": "Toy-v0"},
                     drop=("rewards",))
    with pytest.raises(DatasetError, match=r"missing arrays \['rewards'\]"):
        Dataset.load(path)


def test_wrong_format_name_rejected(tmp_path):
    path = write_npz(tmp_path / "d.npz", {"format": "something-else", "env_id": "Toy-v0"})
    with pytest.raises(DatasetError, match="format is 'something-else'"):
        Dataset.load(path)


def test_metadata_that_is_not_an_object_rejected(tmp_path):
    path = write_npz(tmp_path / "d.npz", [1, 2])
    with pytest.raises(DatasetError, match="metadata is a JSON list"):
        Dataset.load(path)


def test_newer_format_version_rejected(tmp_path):
    path = write_npz(tmp_path / "d.npz",
                     {"format": "morec-dataset", "format_version": FORMAT_VERSION + 1, "env_id": "Toy-v0"})
    with pytest.raises(DatasetError, match="newer than this reader"):
        Dataset.load(path)


def test_invalid_arrays_in_file_name_the_file(tmp_path):
    path = write_npz(tmp_path / "d.npz", {"format": "morec-dataset", "format_version": 1})  # no env_id
    with pytest.raises(DatasetError, match=r"d\.npz: metadata lacks 'env_id'"):
        Dataset.load(path)


def test_failed_save_keeps_old_file_and_leaves_no_partial(tmp_path, monkeypatch):
    old = make_dataset(seed=1)
    path = old.save(tmp_path / "data.npz")
    old_bytes = path.read_bytes()

    def crash_mid_write(file, **arrays):
        with open(file, "wb") as f:
            f.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez_compressed", crash_mid_write)
    new = make_dataset(seed=2)
    with pytest.raises(RuntimeError, match="disk full"):
        new.save(path)
    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz"]
    assert "fingerprint" not in new.metadata  # metadata is only updated once the file is in place
    monkeypatch.undo()
    assert Dataset.load(path).fingerprint() == old.fingerprint()


def test_non_numeric_array_in_file_gives_dataset_error(tmp_path):
    path = write_npz(tmp_path / "d.npz", {"format": "morec-dataset", "format_version": 1, "env_id": "Toy-v0"},
                     rewards=np.array(["high"] * 12))
    with pytest.raises(DatasetError, match=r"d\.npz: could not convert"):
        Dataset.load(path)


@pytest.mark.parametrize("content, says", [
    (b"just some notes\n", "a text file beginning 'just some notes'"),
    (bytes(range(256)), "binary data beginning 00 01 02"),
    (b"\x89HDF\r\n\x1a\n" + bytes(100), "an HDF5 file"),
    (b"", "the file is empty"),
])
def test_a_file_that_is_no_zip_archive_says_what_it_is(tmp_path, content, says):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="not a readable morec dataset") as err:
        Dataset.load(path)
    assert says in str(err.value) and "pickle" not in str(err.value)


def test_a_directory_is_no_dataset_file(tmp_path):
    with pytest.raises(DatasetError, match="a directory, not a morec dataset"):
        Dataset.load(tmp_path)
