"""The latency the command guard adds between the controller and the robot.

Starts morec_guard as a process of its own and publishes commands on its request topic at --rate Hz, as
the controller does; a subscriber on the robot's command topic stands in for the forward command
controller. For each command three wall-clock times (one clock on this machine): published here, sent
on by the guard (the forwarded message's source timestamp) and received (its received timestamp, both
from the middleware, so this process's own scheduling stays out). The guard adds the first span, a
hop and its callback: without it the controller's message would take one hop, as the second span does.

    .venv/bin/python bench/guard_latency.py [--rate 20] [--count 400]
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Float64MultiArray

from morec.task_spec import load_task_spec
from morec_ros.common import MONITOR_QOS

TASK = 'halfcheetah'
REQUEST_TOPIC, COMMAND_TOPIC = '/morec/command_request', '/effort_controller/commands'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rate', type=float, default=20.0, help="commands per second (20: HalfCheetah's control rate)")
    parser.add_argument('--count', type=int, default=400, help='commands timed')
    parser.add_argument('--domain-id', type=int, default=150 + os.getpid() % 80, help='ROS_DOMAIN_ID of the run')
    args = parser.parse_args(argv)
    if not args.rate > 0 or args.count < 1:
        parser.error('--rate and --count must be positive')
    spec = load_task_spec(TASK)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'  # this process and the guard only
    env = dict(os.environ, ROS_DOMAIN_ID=str(args.domain_id))
    # The rate check must not drop what is timed here, whatever --rate.
    burst = max(3.0, 2 * args.rate * spec.control_period)
    guard = subprocess.Popen([sys.executable, '-m', 'morec_ros.guard_node', '--ros-args', '-p', f'task:={TASK}',
                              '-p', f'max_commands_per_period:={burst}'], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=args.domain_id)
    node = rclpy.create_node('guard_latency', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    sent, times = {}, {}  # sequence number -> wall ns published; -> (guard's source ns, received ns)

    def on_command(msg, info):
        k = round(msg.data[0] * 1e6)  # the sequence number rides in the first value, within the limits
        if k in sent:
            times[k] = (info['source_timestamp'], info['received_timestamp'])

    node.create_subscription(Float64MultiArray, COMMAND_TOPIC, on_command, MONITOR_QOS)
    publisher = node.create_publisher(Float64MultiArray, REQUEST_TOPIC, MONITOR_QOS)
    try:
        deadline = time.monotonic() + 30
        while not (publisher.get_subscription_count() and node.count_publishers(COMMAND_TOPIC)):
            if time.monotonic() > deadline or guard.poll() is not None:
                print('the guard did not come up', file=sys.stderr)
                return 1
            executor.spin_once(timeout_sec=0.05)
        warm_up = 20  # discovery settles and caches warm; not timed
        next_at = time.monotonic()
        for k in range(1, warm_up + args.count + 1):
            while time.monotonic() < next_at:
                executor.spin_once(timeout_sec=max(0.0, next_at - time.monotonic()))
            next_at += 1.0 / args.rate
            sent[k] = time.time_ns()
            publisher.publish(Float64MultiArray(data=[k * 1e-6] + [0.0] * (spec.action_dim - 1)))
        deadline = time.monotonic() + 2.0
        while len(times) < len(sent) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        guard.terminate()
        guard.wait(timeout=10)

    timed = [k for k in sorted(times) if k > warm_up]
    spans = {
        'added by the guard (request published -> guard publishes)': [times[k][0] - sent[k] for k in timed],
        'one hop (guard publishes -> robot receives)': [times[k][1] - times[k][0] for k in timed],
        'total (request published -> robot receives)': [times[k][1] - sent[k] for k in timed],
    }
    print(f'{TASK}: {len(timed)} of {args.count} commands at {args.rate:g} Hz through morec_guard '
          f'({args.count - len(timed)} lost)')
    for name, values in spans.items():
        p50, p99, top = np.percentile(np.array(values) / 1e6, [50, 99, 100])
        print(f'  {name:60s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {top:6.2f} ms')
    return 0 if len(timed) == args.count else 1


if __name__ == '__main__':
    sys.exit(main())
