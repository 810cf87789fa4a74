"""Each node's parameters as one dataclass, declared with parameters.declare_params (ROS-free, so tests check
the parameter files against it without starting a node).

Every node of the stack has the task and its command topic; the model nodes (dynamics, filter, controller)
share the bundle, the ONNX Runtime device and threads. Some parameters are declared once others are known,
because their defaults or their set depend on them: the sim's variant overrides (defaults: the variant's
values), the filter's monitor (defaults: the bundle's calibration) and the controller's planner settings
(the fields of the chosen planner's config). `parameter_names` lists them all for a node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from morec.monitor import DEFAULT_ALARM_ON, SIGNALS
from morec.planners import CEMConfig, MPPIConfig
from morec.rollout import MODES as ROLLOUT_MODES
from morec.rollout import FilterConfig
from morec.task_spec import VARIANT_KEYS
from morec_ros.command_guard import GuardConfig
from morec_ros.control_loop import LoopConfig
from morec_ros.parameters import parameter_fields

PLANNER_CONFIGS = {'mppi': MPPIConfig, 'cem': CEMConfig}
SIM_MODES = ('realtime', 'lockstep')
CONTROLLER_MODES = ('mpc', 'policy')
MODELS = ('learned', 'mujoco')
# Parameters rclpy declares on every node.
BUILTIN = frozenset({'use_sim_time', 'start_type_description_service'})


def _check_choices(params, **allowed) -> None:
    for name, choices in allowed.items():
        if getattr(params, name) not in choices:
            raise ValueError(f'{name} must be one of {choices}, got {getattr(params, name)!r}')


@dataclass(frozen=True)
class NodeParams:
    task: str = 'halfcheetah'
    """task name, Gymnasium id or path of a spec YAML (sim/)"""
    command_topic: str = '/effort_controller/commands'
    """Float64MultiArray commands"""
    diagnostics_period: float = 1.0
    """seconds between /diagnostics messages"""

    def __post_init__(self):
        if not self.diagnostics_period > 0:
            raise ValueError('diagnostics_period must be positive')


@dataclass(frozen=True)
class ModelNodeParams(NodeParams):
    bundle: str = ''
    """model bundle directory; '' = models/<task>"""
    device: str = 'auto'
    """ONNX Runtime device: 'auto', 'cpu' or 'cuda'"""
    threads: int = 1
    """ONNX Runtime intra-op threads (0: its default)"""

    def __post_init__(self):
        super().__post_init__()
        if self.threads < 0:
            raise ValueError('threads must be >= 0')


@dataclass(frozen=True)
class SimParams(NodeParams):
    """morec_sim; the variant's settings (VARIANT_KEYS) follow, with the variant's values as defaults."""

    variant: str = 'nominal'
    """robot variant from the task spec"""
    mode: str = 'realtime'
    """'realtime': wall-clock timer; 'lockstep': one step per command"""
    real_time_factor: float = 1.0
    """realtime mode: sim seconds per wall second; lockstep_paced: the most it may reach"""
    lockstep_paced: bool = False
    """lockstep: never faster than real_time_factor"""
    publish_clock: bool = True
    """publish /clock for nodes with use_sim_time"""
    seed: int = 0
    """seed of the first episode and of the sensor noise"""
    episode_length: int = 1000
    """steps before an episode is truncated"""
    start_paused: bool = False
    """publish the first state only when ~/pause turns false"""

    def __post_init__(self):
        super().__post_init__()
        _check_choices(self, mode=SIM_MODES)
        if not self.real_time_factor > 0 or self.episode_length < 1:
            raise ValueError('real_time_factor and episode_length must be positive')


@dataclass(frozen=True)
class DynamicsParams(ModelNodeParams):
    """morec_dynamics"""

    samples_per_elite: int = FilterConfig.samples_per_elite
    """candidates drawn from each elite"""
    seed: int = 0
    """seed of the candidate draws"""
    error_window: int = 100
    """transitions the error summary covers"""

    def __post_init__(self):
        super().__post_init__()
        if self.samples_per_elite < 1 or self.error_window < 1:
            raise ValueError('samples_per_elite and error_window must be positive')


@dataclass(frozen=True)
class FilterParams(ModelNodeParams):
    """morec_filter; MonitorParams follow, with the bundle's calibration as defaults."""

    samples_per_elite: int = FilterConfig.samples_per_elite
    """candidates drawn from each elite"""
    filter_threshold: float = FilterConfig.threshold
    """a selected r_D below this is untrusted"""
    seed: int = 0
    """seed of the candidate draws"""

    def __post_init__(self):
        super().__post_init__()
        if self.samples_per_elite < 1:
            raise ValueError('samples_per_elite must be positive')


@dataclass(frozen=True)
class MonitorParams:
    """The filter node's gap monitor; the defaults here apply to a bundle without a calibration."""

    monitor_signals: list = field(default_factory=lambda: list(DEFAULT_ALARM_ON))
    """signals that raise the gap warning, of dynamics_reward, one_step_error and disagreement (default: the
    one-step error for a calibrated bundle, r_D against monitor_threshold for one without a calibration)"""
    monitor_window: int = 50
    """real transitions the monitor averages"""
    monitor_threshold: float = FilterConfig.threshold
    """WARN while the mean r_D of recent real transitions is below this"""
    error_threshold: float = 0.0
    """WARN while the mean normalised one-step error is above this (0: off)"""
    disagreement_threshold: float = 0.0
    """WARN while the mean ensemble disagreement is above this (0: off)"""

    def __post_init__(self):
        if self.monitor_window < 1:
            raise ValueError('monitor_window must be positive')
        if set(self.monitor_signals) - set(SIGNALS):
            raise ValueError(f'monitor_signals must be among {SIGNALS}, got {self.monitor_signals}')


@dataclass(frozen=True)
class ControllerParams(ModelNodeParams):
    """morec_controller; the fields of the planner's config (PLANNER_CONFIGS) follow."""

    mode: str = 'mpc'
    """'mpc': plan through the model; 'policy': run an ONNX policy"""
    model: str = 'learned'
    """mode 'mpc': 'learned' (the bundle) or 'mujoco' (the task's nominal simulator, the upper bound)"""
    policy: str = ''
    """mode 'policy': ONNX file obs [batch, S] -> action [batch, A] (relative paths from the repository root)"""
    prior_policy: str = ''
    """mode 'mpc': an ONNX policy whose rollout through the model seeds every plan (the behaviour policy);
    '' = none"""
    terminal_value: str = ''
    """mode 'mpc': an offline policy's critic.onnx (`morec train-policy`); every plan's end is valued
    Q(s, pi(s)) with the policy.onnx beside it; '' = none"""
    planner: str = 'mppi'
    """'mppi' or 'cem' (morec.planners); its config's fields are parameters too"""
    rollout: str = 'elite_mean'
    """how a plan's model steps are taken (morec.rollout): 'filter', MOREC's (the candidate r_D scores highest;
    a step scoring below filter_threshold ends the sequence), 'elite_mean' (the elites' mean prediction; the
    default, what the closed-loop measurements favour: docs/results.md) or 'random_elite' (one elite's sample)"""
    filter_threshold: float = FilterConfig.threshold
    """r_D below this ends a model rollout"""
    samples_per_elite: int = FilterConfig.samples_per_elite
    """filter candidates drawn from each elite"""
    threads: int = 0
    loop: LoopConfig = field(default_factory=LoopConfig)
    """the ControlLoop's settings (control_loop.py)"""

    def __post_init__(self):
        super().__post_init__()
        _check_choices(self, planner=tuple(PLANNER_CONFIGS), mode=CONTROLLER_MODES, model=MODELS,
                       rollout=ROLLOUT_MODES)
        if self.mode == 'policy' and not self.policy:
            raise ValueError("mode 'policy' needs the policy parameter: the path of an exported ONNX policy")


@dataclass(frozen=True)
class GuardParams(NodeParams):
    """morec_guard"""

    command_topic: str = '/effort_controller/commands'
    """the robot's forward command controller"""
    request_topic: str = '/morec/command_request'
    """the controller's commands (its command_topic parameter)"""
    guard: GuardConfig = field(default_factory=GuardConfig)
    """the CommandGuard's settings (command_guard.py)"""


@dataclass(frozen=True)
class RecordParams:
    """morec_record"""

    task: str = ''
    """task of the recorded stack, stored in the files for `morec dataset`"""
    command_topic: str = '/effort_controller/commands'
    """Float64MultiArray commands"""
    output: str = ''
    """output folder (must not exist or be empty); '' = recordings/morec_<time>"""
    split_size_mb: float = 0.0
    """start a new file at this size in MB (0: never)"""
    split_duration: float = 0.0
    """start a new file after this many seconds (0: never)"""
    chunk_kb: int = 1024
    """chunk size in kB (a chunk is the unit of zstd compression)"""
    flush_period: float = 1.0
    """seconds between chunk flushes: the most a SIGKILL loses"""
    queue_depth: int = 1000
    """messages each subscription buffers while the writer is busy"""
    diagnostics_period: float = 1.0
    """seconds between /diagnostics messages (messages written and lost per topic)"""

    def __post_init__(self):
        if self.split_size_mb < 0 or self.split_duration < 0:
            raise ValueError('split_size_mb and split_duration must be >= 0')
        if self.chunk_kb < 1 or not self.flush_period > 0 or self.queue_depth < 1 or not self.diagnostics_period > 0:
            raise ValueError('chunk_kb, flush_period, queue_depth and diagnostics_period must be positive')


NODE_PARAMS = {'morec_sim': SimParams, 'morec_dynamics': DynamicsParams, 'morec_filter': FilterParams,
               'morec_controller': ControllerParams, 'morec_guard': GuardParams, 'morec_record': RecordParams}


def parameter_names(node: str, values: dict) -> set[str]:
    """Every parameter node `node` (a name in NODE_PARAMS) declares, given the values it is started with
    (the controller's planner decides which planner settings it has)."""
    cls = NODE_PARAMS[node]
    names = {name for name, _, _ in parameter_fields(cls)} | BUILTIN
    if cls is SimParams:
        names |= set(VARIANT_KEYS)
    elif cls is FilterParams:
        names |= {name for name, _, _ in parameter_fields(MonitorParams)}
    elif cls is ControllerParams:
        planner = PLANNER_CONFIGS.get(values.get('planner', ControllerParams.planner), MPPIConfig)
        names |= {name for name, _, _ in parameter_fields(planner)}
    return names
