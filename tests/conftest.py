"""Shared fixtures: a tiny InvertedPendulum data set and small models trained on it once per session; node processes
stopped after a test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from morec.collect import rollout_dataset
from morec.dynamics_reward import RewardConfig, train_dynamics_reward
from morec.ensemble import EnsembleConfig, train_ensemble
from morec.task_spec import load_task_spec

torch.set_num_threads(1)

TINY_ENSEMBLE = EnsembleConfig(hidden=(64, 64), weight_decay=(2.5e-5, 5e-5, 1e-4), max_epochs=15, batch_size=128)
TINY_REWARD = RewardConfig(iterations=600, keep_snapshots=30, snapshot_stride=3, calibration_size=512)


def pytest_configure(config):
    config.addinivalue_line("markers", "multiprocess: starts ROS 2 nodes as processes (tests/rosproc.py)")


@pytest.fixture(scope="session")
def pendulum_data():
    return rollout_dataset(load_task_spec("inverted_pendulum"), None, 3000, seed=0, policy_name="random",
                           progress=False)


@pytest.fixture(scope="session")
def pendulum_eval_data():
    return rollout_dataset(load_task_spec("inverted_pendulum"), None, 1000, seed=1, policy_name="random",
                           progress=False)


@pytest.fixture(scope="session")
def tiny_ensemble(pendulum_data):
    return train_ensemble(pendulum_data, TINY_ENSEMBLE, progress=False)


@pytest.fixture(scope="session")
def tiny_reward(pendulum_data, tiny_ensemble):
    space = load_task_spec("inverted_pendulum").make_env().action_space
    return train_dynamics_reward(pendulum_data, tiny_ensemble, TINY_REWARD, progress=False,
                                 action_bounds=(space.low, space.high))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def processes():
    """The rosproc.NodeProcess objects a test appends here are stopped after it, passed or failed."""
    started = []
    yield started
    for p in started:
        p.stop()
