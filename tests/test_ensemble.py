import numpy as np
import pytest
import torch

from morec.ensemble import EnsembleConfig, EnsembleDynamics, holdout_mse, train_ensemble


def test_predict_shapes_and_next_state_is_obs_plus_delta():
    model = EnsembleDynamics(4, 2, EnsembleConfig(members=3, elites=2, hidden=(8,), weight_decay=(0.0, 0.0)))
    obs, act = torch.randn(5, 4), torch.randn(5, 2)
    delta, logvar = model(obs, act)
    mean, std = model.predict(obs, act)
    assert mean.shape == std.shape == (3, 5, 5)
    torch.testing.assert_close(mean[..., :4], delta[..., :4] + obs)
    torch.testing.assert_close(std, torch.exp(0.5 * logvar))


def test_log_variance_stays_within_learned_bounds():
    model = EnsembleDynamics(3, 1, EnsembleConfig(members=2, elites=1, hidden=(8,), weight_decay=(0.0, 0.0)))
    with torch.no_grad():
        model.mlp.linear_layers()[-1].bias.fill_(1e3)
        _, high = model(torch.zeros(4, 3), torch.zeros(4, 1))
        model.mlp.linear_layers()[-1].bias.fill_(-1e3)
        _, low = model(torch.zeros(4, 3), torch.zeros(4, 1))
    assert high.max() <= model.max_logvar.max() + 1e-3  # soft clamp: at most softplus(max - min) above
    assert low.min() >= model.min_logvar.min() - 1e-3


def test_weight_decay_needs_one_coefficient_per_layer():
    with pytest.raises(ValueError, match="weight_decay"):
        EnsembleDynamics(3, 1, EnsembleConfig(hidden=(8, 8), weight_decay=(0.1,)))


def test_training_fits_the_data_and_picks_the_best_members_as_elites(pendulum_data, tiny_ensemble):
    obs, act = torch.from_numpy(pendulum_data.observations), torch.from_numpy(pendulum_data.actions)
    target = torch.from_numpy(np.concatenate([pendulum_data.next_observations - pendulum_data.observations,
                                              pendulum_data.rewards[:, None]], 1))
    trained = holdout_mse(tiny_ensemble, obs, act, target)
    untrained = holdout_mse(EnsembleDynamics(4, 1, tiny_ensemble.cfg), obs, act, target)
    assert trained.mean() < 0.2 * untrained.mean()
    held_out = np.asarray(tiny_ensemble.metadata["holdout_mse"])
    assert sorted(tiny_ensemble.elites.tolist()) == sorted(np.argsort(held_out)[:5].tolist())
    assert tiny_ensemble.metadata["dataset_fingerprint"] == pendulum_data.fingerprint()


def test_early_stopping_ends_training_before_the_epoch_cap(pendulum_data):
    cfg = EnsembleConfig(members=2, elites=1, hidden=(16,), weight_decay=(0.0, 0.0), patience=1,
                         min_improvement=0.9, max_epochs=50)
    model = train_ensemble(pendulum_data, cfg, progress=False)
    assert model.metadata["epochs"] <= 3


def test_save_load_round_trip_gives_identical_predictions(tmp_path, tiny_ensemble):
    tiny_ensemble.save(tmp_path / "e.pt")
    loaded = EnsembleDynamics.load(tmp_path / "e.pt")
    obs, act = torch.randn(6, 4), torch.randn(6, 1)
    with torch.no_grad():
        for a, b in zip(tiny_ensemble.predict(obs, act), loaded.predict(obs, act)):
            torch.testing.assert_close(a, b)
    assert loaded.elites.tolist() == tiny_ensemble.elites.tolist()
    assert loaded.metadata == tiny_ensemble.metadata


def test_elites_only_ensemble_predicts_exactly_as_the_elites_of_the_full_one(tiny_ensemble):
    elites = tiny_ensemble.elites.tolist()
    assert len(elites) < tiny_ensemble.cfg.members and elites != list(range(len(elites)))  # a real selection
    small = tiny_ensemble.elites_only()
    assert small.cfg.members == len(elites) and small.elites.tolist() == list(range(len(elites)))
    assert small.metadata["elite_members"] == elites
    obs, act = torch.randn(6, 4), torch.randn(6, 1)
    with torch.no_grad():
        for full, kept in zip(tiny_ensemble.predict(obs, act), small.predict(obs, act)):
            torch.testing.assert_close(kept, full[elites])


def test_missing_or_corrupt_model_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="morec train-dynamics"):
        EnsembleDynamics.load(tmp_path / "absent.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="unreadable"):
        EnsembleDynamics.load(tmp_path / "bad.pt")
