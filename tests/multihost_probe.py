"""What one host of test_multihost sees of the stack: started inside a network namespace (the test process cannot
join one), it prints a JSON summary of the topics it receives every 0.2 s until it is stopped.

Usage: ROS_DOMAIN_ID=<id> python tests/multihost_probe.py
"""

import json
import os

from diagnostic_msgs.msg import DiagnosticArray
from rosproc import Client
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray


def main():
    client = Client(int(os.environ["ROS_DOMAIN_ID"]), name="multihost_probe")
    seen = {"states": 0, "state_stamp_ns": None, "returns": [], "scores": 0, "sim": {}, "nodes": []}

    def on_state(msg):
        seen["states"] += 1
        seen["state_stamp_ns"] = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

    def on_diagnostics(msg):
        for status in msg.status:
            node = status.name.split(":")[0]
            seen["nodes"] = sorted({*seen["nodes"], node})
            if node == "morec_sim":
                seen["sim"] = {kv.key: kv.value for kv in status.values}

    node = client.node
    node.create_subscription(JointState, "/joint_states", on_state, 100)
    node.create_subscription(Float64, "/morec/episode_return", lambda msg: seen["returns"].append(msg.data), 10)
    node.create_subscription(Float64MultiArray, "/morec/dynamics_reward",
                             lambda msg: seen.update(scores=seen["scores"] + 1), 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 100)
    try:
        while True:
            client.spin_until(lambda: False, 0.2)
            print(json.dumps(seen), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        client.close()


if __name__ == "__main__":
    main()
