#!/usr/bin/env bash
# Both images: the distro's ROS 2 and the built workspace on every path, then the command (default: the full stack).
set -e
source /opt/ros/jazzy/setup.bash
source /opt/morec-stack/ros2_ws/install/setup.bash
exec "$@"
