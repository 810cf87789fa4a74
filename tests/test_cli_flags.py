"""The `morec` CLI's flags are generated from the config dataclasses, so they cannot drift from them."""

import dataclasses

import pytest

from morec.behavior import SACConfig
from morec.cli import main
from morec.commands import parse
from morec.dynamics_reward import DistillConfig, RewardConfig
from morec.ensemble import EnsembleConfig
from morec.offline_rl import OfflineRLConfig


@pytest.mark.parametrize("command, config", [(["behavior", "train"], SACConfig), (["train-dynamics"], EnsembleConfig),
                                             (["train-reward"], RewardConfig), (["distill-reward"], DistillConfig),
                                             (["train-policy"], OfflineRLConfig)])
def test_every_config_field_is_a_flag_of_its_command(command, config, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    usage = capsys.readouterr().out
    for f in dataclasses.fields(config):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool") and f.default is True:
            flag = "--no-" + f.name.replace("_", "-")
        assert flag in usage, (config.__name__, flag)


def test_flags_fill_the_config_with_their_types():
    args = parse(["train-dynamics", "--data", "d.npz", "--bundle", "b", "--hidden", "64", "64", "--max-epochs", "3",
                  "--weight-decay", "0", "0", "1e-4", "--seed", "4"])
    assert args.cfg == EnsembleConfig(hidden=(64, 64), max_epochs=3, weight_decay=(0.0, 0.0, 1e-4), seed=4)
    assert args.command_line == "morec train-dynamics --data d.npz --bundle b --hidden 64 64 --max-epochs 3 " \
                                "--weight-decay 0 0 1e-4 --seed 4"


def test_train_policy_flags_given_win_over_the_task_settings_and_the_rest_take_them():
    args = parse(["train-policy", "--bundle", "b", "--data", "d.npz", "--level", "random", "--out", "o",
                  "--rollout-horizon", "7", "--no-morec"])
    task = dataclasses.replace(args.cfg, rollout_horizon=20, penalty_coef=0.1)  # as sim/offline_rl/<task>.yaml
    cfg = parse(args.argv, default=dataclasses.replace(args, cfg=task)).cfg
    assert (cfg.rollout_horizon, cfg.penalty_coef, cfg.morec) == (7, 0.1, False)
