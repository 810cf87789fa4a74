"""`colcon test`: every launch config starts installed executables with shipped parameter files, and the
model files those parameters name are shipped too."""

import yaml

from morec import runner
from morec_ros.common import model_file


def test_every_config_resolves():
    configs = sorted(runner.config_dir().glob("*.yaml"))
    assert configs, runner.config_dir()
    for config in configs:
        assert runner.load_config(config)  # raises naming what is missing


def test_model_files_in_parameter_files_exist():
    for params in sorted((runner.config_dir().parent / "params").glob("**/*.yaml")):
        for section in yaml.safe_load(params.read_text()).values():
            for value in section["ros__parameters"].values():
                if isinstance(value, str) and value.endswith(".onnx"):
                    assert model_file(value).is_file(), (params.name, value)
