"""declare_params: a dataclass's fields as node parameters (defaults, descriptions, types), built and checked by
the dataclass; and the parameter files hold only parameters of the nodes whose sections they are in."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from morec_ros.node_params import NODE_PARAMS, parameter_names
from morec_ros.parameters import declare_params

PARAMS = Path(__file__).resolve().parents[1] / "launch" / "params"


@dataclass(frozen=True)
class Inner:
    gain: float = 0.5  # how strongly it pulls
    on: bool = True

    def __post_init__(self):
        if not self.gain > 0:
            raise ValueError("gain must be positive")


@dataclass(frozen=True)
class Example:
    name: str = "cheetah"
    """what it is called"""
    steps: int = 3
    """steps per call"""
    weights: list = field(default_factory=lambda: [1.0, 2.0])
    tags: list = field(default_factory=lambda: ["a", "b"])
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"need steps >= 1, got {self.steps}")


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def node_with(context, **overrides):
    params = [Parameter(k, value=v) for k, v in overrides.items()]
    return Node("example", context=context, parameter_overrides=params)


def test_defaults_descriptions_and_types(context):
    node = node_with(context)
    params = declare_params(node, Example)
    assert params == Example()
    assert node.describe_parameter("name").description == "what it is called"  # the docstring after the field
    assert node.describe_parameter("gain").description == "how strongly it pulls"  # the comment ending its line
    assert node.describe_parameter("on").description == f"Inner.on ({__name__})"  # none: where it is from
    types = {name: node.describe_parameter(name).type for name in ("name", "steps", "weights", "tags", "gain", "on")}
    assert types == {"name": Parameter.Type.STRING.value, "steps": Parameter.Type.INTEGER.value,
                     "weights": Parameter.Type.DOUBLE_ARRAY.value, "tags": Parameter.Type.STRING_ARRAY.value,
                     "gain": Parameter.Type.DOUBLE.value, "on": Parameter.Type.BOOL.value}
    node.destroy_node()


def test_given_values_build_the_dataclass(context):
    node = node_with(context, name="pendulum", steps=7, weights=[0.5], tags=["x"], gain=2.0, on=False)
    params = declare_params(node, Example)
    assert params == Example("pendulum", 7, [0.5], ["x"], Inner(2.0, False))
    assert type(params.weights) is list and type(params.inner) is Inner
    node.destroy_node()


def test_a_float_parameter_takes_a_whole_number(context):
    node = node_with(context, gain=2)  # `gain: 2` in a YAML file: an integer to ROS
    params = declare_params(node, Example)
    assert params.inner.gain == 2.0 and type(params.inner.gain) is float
    assert node.describe_parameter("gain").type == Parameter.Type.DOUBLE.value
    node.destroy_node()


def test_start_up_defaults_replace_the_dataclass_ones(context):
    node = node_with(context, name="given")
    params = declare_params(node, Example, {"name": "calibrated", "steps": 9})
    assert (params.name, params.steps) == ("given", 9)
    node.destroy_node()


def test_a_rejected_value_names_its_parameter(context):
    node = node_with(context, name="ok", steps=0)
    with pytest.raises(ValueError, match=r"^parameter steps=0: need steps >= 1, got 0$"):
        declare_params(node, Example)
    node.destroy_node()
    node = node_with(context, gain=-1.0)  # a nested dataclass's check
    with pytest.raises(ValueError, match=r"^parameter gain=-1.0: gain must be positive$"):
        declare_params(node, Example)
    node.destroy_node()


def test_a_value_of_the_wrong_type_names_its_parameter(context):
    node = node_with(context, steps="three")
    with pytest.raises(ParameterException, match="steps"):
        declare_params(node, Example)
    node.destroy_node()


def sections(path: Path) -> dict:
    return {name: doc.get("ros__parameters") or {} for name, doc in (yaml.safe_load(path.read_text()) or {}).items()}


@pytest.mark.parametrize("path", sorted(PARAMS.glob("*.yaml")) + sorted(PARAMS.glob("tasks/*.yaml")),
                         ids=lambda p: str(p.relative_to(PARAMS)))
def test_parameter_files_set_only_parameters_their_nodes_declare(path):
    files = sections(path)
    for section, values in files.items():
        nodes = NODE_PARAMS if section == "/**" else [section]  # /** reaches every node
        assert section == "/**" or section in NODE_PARAMS, f"{path.name}: no node {section}"
        for node in nodes:
            # The controller's planner settings are those of the planner the files choose.
            chosen = {**sections(PARAMS / "stack.yaml").get(node, {}), **files.get(node, {})}
            unknown = set(values) - parameter_names(node, chosen)
            assert not unknown, f"{path.name}: {section} sets {sorted(unknown)}, which {node} does not declare"
