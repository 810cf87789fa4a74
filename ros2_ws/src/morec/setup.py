from setuptools import find_packages, setup

package_name = "morec"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["tests"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "pyyaml", "tqdm"],
    extras_require={
        "learn": ["torch", "gymnasium[mujoco]", "mujoco", "stable-baselines3", "scipy", "matplotlib"],
        "onnx": ["onnx", "onnxruntime"],
        "gpu": ["onnxruntime-gpu"],
        "minari": ["minari"],
        "d4rl": ["h5py"],
        "ray": ["ray"],
    },
    entry_points={"console_scripts": ["morec = morec.cli:main"]},
    zip_safe=True,
    license="Apache-2.0",
    description="morec-stack core library (no ROS imports)",
)
