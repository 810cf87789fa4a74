import os
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "morec_ros"
# launch/ at the repository root, relative to the working directory as setuptools wants (see morec's setup.py).
LAUNCH = os.path.relpath(Path(__file__).resolve().parents[3] / "launch")

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        # The layout of launch/ kept: the launch files find configs/ beside them, configs find ../params.
        (f"share/{package_name}/launch", glob(f"{LAUNCH}/*.launch.py")),
        (f"share/{package_name}/launch/configs", glob(f"{LAUNCH}/configs/*.yaml")),
        (f"share/{package_name}/launch/params", glob(f"{LAUNCH}/params/*.yaml")),
        (f"share/{package_name}/launch/params/tasks", glob(f"{LAUNCH}/params/tasks/*.yaml")),
    ],
    python_requires=">=3.10",
    # rclpy and the message packages come from a ROS distro or the ros-jazzy-* wheels.
    install_requires=["morec", "numpy"],
    extras_require={"test": ["pytest"]},  # what makes `colcon test` run test/
    entry_points={"console_scripts": [
        "morec_sim = morec_ros.sim_node:main",
        "morec_dynamics = morec_ros.dynamics_node:main",
        "morec_filter = morec_ros.filter_node:main",
        "morec_controller = morec_ros.controller_node:main",
        "morec_guard = morec_ros.guard_node:main",
        "morec_demo = morec_ros.demo:main",
        "morec_record = morec_ros.record_node:main",
        "morec_stack = morec_ros.stack:main",
    ]},
    zip_safe=True,
    license="Apache-2.0",
    description="morec-stack ROS 2 nodes",
)
