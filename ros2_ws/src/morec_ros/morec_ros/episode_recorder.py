"""The demo's recorder: a small rclpy node that starts the sim's first episode once every node is up, keeps
what the report needs, and lines it up into that episode (episode_report.Episode).

Every message is kept with its source timestamp (the publisher's wall clock, which all processes on
this machine share). That orders them across topics: a command answers the latest state published
before it, and the filter's prediction and scores belong to the command that triggered them.
"""

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import SetBool

from morec.task_spec import TaskSpec
from morec_ros.common import named
from morec_ros.episode_report import Episode

# The nodes of launch/configs/full.yaml the recorder talks to or listens for.
SIM, CONTROLLER, FILTER = 'morec_sim', 'morec_controller', 'morec_filter'


@dataclass
class Recording:
    """What the recorder kept; `sent` is a message's source timestamp [ns]."""
    states: list = field(default_factory=list)  # (sent, stamp ns, observation)
    commands: list = field(default_factory=list)  # sent
    plans: list = field(default_factory=list)  # sent
    predictions: list = field(default_factory=list)  # (sent, predicted observation)
    scores: list = field(default_factory=list)  # (sent, [r_D of the selected candidate, of the real transition,
    #                                                    the answered command's send time in s])
    returns: list = field(default_factory=list)  # episode returns, as the sim reports them
    metrics: list = field(default_factory=list)  # (sent, the controller's metrics by name)
    monitor: list = field(default_factory=list)  # the filter's diagnostics (key -> value)
    planner: str = ''  # what the controller runs (its diagnostics' hardware_id)
    end: int | None = None  # index of the first state after the first episode

    @property
    def complete(self) -> bool:
        """The first episode is over and the controller has reported on it since."""
        return (self.end is not None and bool(self.returns) and bool(self.metrics)
                and self.metrics[-1][0] > self.states[self.end][0])


def episode(rec: Recording) -> Episode:
    """The first episode's states, and what the controller and filter said about each of them (rec.complete)."""
    states = rec.states[:rec.end]
    sent = np.array([s for s, _, _ in states])
    after = rec.states[rec.end][0]  # the next episode's first state
    cmd_t = np.array(rec.commands, dtype=np.int64)
    # The state each command answers; -1 for commands of the next episode.
    cmd_k = np.where(cmd_t < after, np.searchsorted(sent, cmd_t, side='right') - 1, -1)

    def state_of(messages):  # by the latest command sent before each message
        j = np.searchsorted(cmd_t, [t for t, _ in messages], side='right') - 1
        return [int(cmd_k[i]) if i >= 0 else -1 for i in j]

    def answered(scores):  # by the command each score names: its send time in float seconds, to within 1 us
        ks = []
        for _, score in scores:
            gap = np.abs(cmd_t - score[2] * 1e9)
            i = int(np.argmin(gap)) if len(gap) else -1
            ks.append(int(cmd_k[i]) if i >= 0 and gap[i] < 1e3 else -1)
        return ks

    last = len(states) - 1
    score_k = answered(rec.scores)
    # The filter publishes a prediction and then a score for each command: in pairs, in order.
    prediction_k = score_k if len(rec.predictions) == len(rec.scores) else state_of(rec.predictions)
    # Later messages for the same state replace earlier ones: the robot acts on the latest command.
    predicted = {k + 1: p for k, (_, p) in zip(prediction_k, rec.predictions) if 0 <= k < last}
    selected = {k + 1: s[0] for k, (_, s) in zip(score_k, rec.scores) if 0 <= k < last}
    real = {k: s[1] for k, (_, s) in zip(score_k, rec.scores)
            if 1 <= k <= last and np.isfinite(s[1])}  # the transition into state k

    def during(times):  # how many were sent while the episode ran
        return int(sum(sent[0] <= t < sent[-1] for t in times))

    return Episode(time=np.array([stamp for _, stamp, _ in states]) / 1e9, obs=np.array([o for _, _, o in states]),
                   predicted=predicted, selected=selected, real=real, commands=during(rec.commands),
                   plans=during(rec.plans), wall=(sent[-1] - sent[0]) / 1e9, episode_return=rec.returns[0],
                   controller=rec.metrics[-1][1], planner=rec.planner, monitor=rec.monitor)


class Recorder(Node):
    """Starts the sim's first episode once every node is up, and records into `recording`."""

    def __init__(self, context, spec: TaskSpec, command_topic: str, nodes: list[str]):
        super().__init__('morec_demo', context=context)
        self.recording = rec = Recording()
        self._spec = spec
        self._waiting_for = set(nodes)  # nodes not heard from yet
        self._resume = self.create_client(SetBool, f'/{SIM}/pause')
        self._resumed_at = None
        # Transient-local: the sim's first state may have been published before this node matched it.
        latched = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(JointState, 'joint_states', self._on_state, latched)
        self._keep(Float64MultiArray, command_topic, lambda t, _: rec.commands.append(t))
        self._keep(Float64MultiArray, 'morec/plan', lambda t, _: rec.plans.append(t))
        self._keep(Float64MultiArray, 'morec/prediction', lambda t, m: rec.predictions.append((t, np.array(m.data))))
        self._keep(Float64MultiArray, 'morec/dynamics_reward', lambda t, m: rec.scores.append((t, list(m.data))))
        self._keep(Float64, 'morec/episode_return', lambda t, m: rec.returns.append(m.data))
        self._keep(Float64MultiArray, 'morec/controller_metrics', lambda t, m: rec.metrics.append((t, named(m))))
        self._keep(DiagnosticArray, '/diagnostics', self._on_diagnostics)

    def _keep(self, msg_type, topic, take):
        self.create_subscription(msg_type, topic, lambda msg, info: take(info['source_timestamp'], msg),
                                 QoSProfile(depth=100))

    def _on_state(self, msg, info):
        rec = self.recording
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if rec.end is None and rec.states and stamp == rec.states[-1][1]:
            rec.end = len(rec.states)  # the sim's reset after an episode repeats the last stamp
        obs = self._spec.observation_from_joint_state(msg.name, msg.position, msg.velocity)
        rec.states.append((info['source_timestamp'], stamp, obs))

    def _on_diagnostics(self, _, msg):
        self._waiting_for -= {s.name.split(':')[0] for s in msg.status}
        for s in msg.status:
            if s.name.startswith(f'{CONTROLLER}:'):
                self.recording.planner = s.hardware_id
            elif s.name.startswith(f'{FILTER}:'):
                self.recording.monitor.append({kv.key: kv.value for kv in s.values})

    def start_when_ready(self):
        """Unpause the sim once every node has been heard from, repeating until its first state arrives.

        Hearing from a node means it is fully up and it has discovered this one; a node that joins
        the DDS graph later than another may not hear of it for a few seconds.
        """
        if self._waiting_for or self.recording.states or not self._resume.service_is_ready():
            return
        if self._resumed_at is None or time.monotonic() - self._resumed_at > 1.0:
            self._resume.call_async(SetBool.Request(data=False))
            self._resumed_at = time.monotonic()


def record(executor, recorder: Recorder, stop: threading.Event, timeout: float) -> None:
    """Spin until the episode is reported on, the runner stops, or time is up; then stop the runner
    (also when recording fails: the nodes must not run on without it)."""
    deadline = time.monotonic() + timeout
    try:
        while not (stop.is_set() or recorder.recording.complete) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            recorder.start_when_ready()
    finally:
        stop.set()
