import os
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "morec"
# The shipped files sit at the repository root, shared with the source checkout's layout. setuptools
# wants data files relative to the working directory: pip runs setup.py here, colcon --symlink-install
# in its build directory.
ROOT = os.path.relpath(Path(__file__).resolve().parents[3])


def share(folder):
    """data_files entries putting every file under the repository's `folder` into share/morec/`folder`,
    where morec.share looks for them."""
    files = sorted(f for f in glob(f"{ROOT}/{folder}/**", recursive=True) if os.path.isfile(f))
    if not files:  # e.g. ros2_ws copied alone: an install without them fails only when a node starts
        raise FileNotFoundError(f"no {folder}/ in {os.path.abspath(ROOT)}: build from a whole morec-stack checkout")
    return [(f"share/{package_name}/{os.path.relpath(d, ROOT)}", [f for f in files if os.path.dirname(f) == d])
            for d in sorted({os.path.dirname(f) for f in files})]


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["tests"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        *share("sim"),  # task specs
        *share("models"),  # the default bundles and behaviour policies
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "pyyaml", "pydantic>=2", "tqdm", "tyro"],
    extras_require={
        "learn": ["torch", "gymnasium[mujoco]", "mujoco", "stable-baselines3", "scipy", "matplotlib"],
        "onnx": ["onnx", "onnxruntime"],
        "gpu": ["onnxruntime-gpu"],
        "minari": ["minari"],
        "d4rl": ["h5py"],
        "mcap": ["mcap", "mcap-ros2-support"],  # morec dataset from-mcap
        "ray": ["ray"],
        "test": ["pytest"],  # what makes `colcon test` run test/
    },
    entry_points={"console_scripts": ["morec = morec.cli:main"]},
    zip_safe=True,
    license="Apache-2.0",
    description="morec-stack core library (no ROS imports)",
)
