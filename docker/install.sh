#!/usr/bin/env bash
# The Python side of both images, from the repository's requirement files (run from the checkout's root):
#   docker/install.sh [--gpu]
# A venv in /opt/venv that also sees the distro's Python packages. ROS 2 itself (rclpy, the messages, ros2 launch)
# comes from the distro in /opt/ros/jazzy, so the ros-jazzy-* wheels of requirements.txt, the pip world's stand-in
# for it, are left out.
set -euo pipefail
python3 -m venv --system-site-packages /opt/venv
pip="/opt/venv/bin/python -m pip"
$pip install --no-cache-dir --upgrade pip
# requirements.txt's torch, CPU build: PyPI's Linux wheel would pull gigabytes of CUDA libraries that inference
# (ONNX Runtime) does not use. The later install keeps it: 2.13.0+cpu satisfies torch==2.13.0.
$pip install --no-cache-dir --no-deps --index-url https://download.pytorch.org/whl/cpu "$(grep '^torch==' requirements.txt)"
grep -v '^ros-jazzy-' requirements.txt > /tmp/requirements-distro.txt
$pip install --no-cache-dir -r /tmp/requirements-distro.txt
if [ "${1:-}" = --gpu ]; then  # the swap `make setup GPU=1` makes: both wheels install the onnxruntime module
    $pip uninstall --yes onnxruntime
    $pip install --no-cache-dir --force-reinstall --no-deps -r requirements-gpu.txt
fi
