"""Does morec_record keep up? Messages published at a rate against messages in the file.

    .venv/bin/python bench/record_loss.py [--rates 20 200 2000] [--seconds 5] [--out PATH]

For each rate a fresh recorder (its own process, a ROS domain of its own) records while this process
publishes a HalfCheetah-sized JointState (9 joints) and a 6-value command at that rate for the given
time, both with the stack's publisher QoS (reliable, keep last 10), each carrying its index. After a
SIGINT the recorder closes its files and the indices found in them are counted: lost = published -
recorded. The tasks' fastest control rate is 125 Hz (Hopper, Walker2d), so 200 Hz is above every task
and 2000 Hz ten times that. Prints a table; --out also writes it as JSON.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from morec.fileio import write_json
from morec.mcap_import import COMMAND_TOPIC, STATE_TOPIC, read_recording

JOINTS = [f"joint_{i}" for i in range(9)]
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def measure(rate: float, seconds: float, domain: int, folder: Path) -> dict:
    log = open(folder.with_suffix(".log"), "w")
    recorder = subprocess.Popen([sys.executable, "-m", "morec_ros.record_node",
                                 "--ros-args", "-p", f"output:={folder}"],
                                stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, ROS_DOMAIN_ID=str(domain), RCUTILS_LOGGING_BUFFERED_STREAM="1"))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("record_loss", context=context)
    states = node.create_publisher(JointState, STATE_TOPIC, QOS)
    commands = node.create_publisher(Float64MultiArray, COMMAND_TOPIC, QOS)
    # Recording starts once the recorder has matched both publishers (it logs each match).
    deadline = time.monotonic() + 30
    while not all(f"{t}: 1 publisher(s)" in folder.with_suffix(".log").read_text()
                  for t in (STATE_TOPIC, COMMAND_TOPIC)):
        if time.monotonic() > deadline or recorder.poll() is not None:
            raise RuntimeError(f"the recorder did not match the publishers:\n{folder.with_suffix('.log').read_text()}")
        time.sleep(0.05)
    count = int(rate * seconds)
    msg = JointState(name=JOINTS, position=[0.0] * 9, velocity=[0.0] * 9, effort=[0.0] * 9)
    start = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(i, 10**9)  # the index, in nanoseconds
        states.publish(msg)
        commands.publish(Float64MultiArray(data=[float(i)] + [0.0] * 5))
    achieved = count / (time.monotonic() - start)
    time.sleep(1.0)
    recorder.send_signal(signal.SIGINT)
    recorder.wait(timeout=60)
    node.destroy_node()
    rclpy.shutdown(context=context)
    recording = read_recording(folder, {STATE_TOPIC, COMMAND_TOPIC})
    got = {STATE_TOPIC: set(), COMMAND_TOPIC: set()}
    for m in recording.messages:
        got[m.topic].add(m.msg.header.stamp.nanosec if m.topic == STATE_TOPIC else int(m.msg.data[0]))
    lost = {t: count - len(got[t] & set(range(count))) for t in got}
    return {"rate_hz": rate, "achieved_hz": round(achieved, 1), "published_per_topic": count,
            "lost_states": lost[STATE_TOPIC], "lost_commands": lost[COMMAND_TOPIC],
            "loss_percent": round(100 * sum(lost.values()) / (2 * count), 3),
            "file_bytes": sum(Path(f).stat().st_size for f in recording.files)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[20, 200, 2000])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--domain", type=int, default=97)
    parser.add_argument("--out", help="JSON with the table")
    args = parser.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, rate in enumerate(args.rates):
            rows.append(measure(rate, args.seconds, args.domain + i, Path(tmp) / f"rate_{i}"))
            r = rows[-1]
            print(f"{r['rate_hz']:>7.0f} Hz (achieved {r['achieved_hz']:>7.1f}): {r['published_per_topic']} states and "
                  f"commands each, lost {r['lost_states']} states and {r['lost_commands']} commands "
                  f"({r['loss_percent']}%), {r['file_bytes'] / 1e3:.0f} kB", flush=True)
    if args.out:
        write_json(Path(args.out), {"seconds": args.seconds, "load": os.getloadavg(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
