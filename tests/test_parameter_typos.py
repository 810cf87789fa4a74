"""A parameter a node does not declare stops it at start-up, naming the key and the valid ones."""

import os
import subprocess
import sys

from rosproc import fresh_domain


def start(module: str, *params: str):
    args = [sys.executable, "-m", f"morec_ros.{module}", "--ros-args", "-p", "task:=inverted_pendulum"]
    for p in params:
        args += ["-p", p]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "ROS_DOMAIN_ID": str(fresh_domain())})


def test_a_misspelt_parameter_stops_the_node_with_one_clear_line():
    runs = [("sim_node", start("sim_node", "varient:=real")),
            ("controller_node", start("controller_node", "device:=cpu", "sampels:=10", "horizn:=3")),
            ("guard_node", start("guard_node", "silent_period:=3.0"))]
    outputs = {}
    for module, run in runs:
        outputs[module], _ = run.communicate(timeout=60)
        assert run.returncode == 1, (module, outputs[module])
        assert "[FATAL]" in outputs[module] and "Traceback" not in outputs[module], outputs[module]
    assert "morec_sim has no parameter varient; its parameters:" in outputs["sim_node"]
    assert "variant" in outputs["sim_node"]
    assert "has no parameters horizn, sampels" in outputs["controller_node"] and "samples" in outputs["controller_node"]
    assert "morec_guard has no parameter silent_period; its parameters:" in outputs["guard_node"]
    assert "silent_periods" in outputs["guard_node"]
