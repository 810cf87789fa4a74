"""docker/ cannot be built here (no engine): check that the images use the files and entry points the rest of the
suite tests outside Docker, so they cannot drift apart, and that `make setup GPU=1` swaps the ONNX Runtime wheels."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.cuda"]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def pin(requirements: Path, name: str) -> str:
    (version,) = re.findall(rf"^{re.escape(name)}==(\S+)", requirements.read_text(), re.M)
    return version


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_and_runs_files_that_exist(dockerfile):
    steps = instructions(dockerfile)
    copied = [src for kind, args in steps if kind == "COPY" for src in args.split()[:-1]]
    assert "." in copied, "the image must hold the checkout for colcon build"
    for src in copied:
        assert (REPO / src).exists(), f"{dockerfile.name} copies {src}, which is not in the repository"
    runs = " ".join(args for kind, args in steps if kind == "RUN")
    scripts = re.findall(r"docker/\S+\.sh", runs)
    assert "docker/install.sh" in scripts
    for script in scripts:
        assert os.access(REPO / script, os.X_OK), f"{script} must be executable"
    assert "colcon build" in runs
    entry = json.loads(dict(steps)["ENTRYPOINT"])
    assert entry == ["/opt/morec-stack/docker/entrypoint.sh"] and dict(steps)["WORKDIR"] == "/opt/morec-stack"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_default_command_is_an_installed_launch_file(dockerfile):
    command = json.loads(dict(instructions(dockerfile))["CMD"])
    assert command[:3] == ["ros2", "launch", "morec_ros"]
    launch_file = REPO / "launch" / command[3]
    assert launch_file.is_file()
    # morec_ros's setup.py installs launch/*.launch.py into share/morec_ros/launch, where `ros2 launch` finds it
    setup = (REPO / "ros2_ws" / "src" / "morec_ros" / "setup.py").read_text()
    assert 'glob(f"{LAUNCH}/*.launch.py")' in setup and fnmatch.fnmatch(launch_file.name, "*.launch.py")


def test_install_script_uses_the_repository_requirement_files():
    script = (REPO / "docker" / "install.sh").read_text()
    named = set(re.findall(r"(?<![/\w-])requirements[\w-]*\.txt", script))  # not the temporary one in /tmp
    assert named == {"requirements.txt", "requirements-gpu.txt"}
    assert all((REPO / name).is_file() for name in named)
    requirements = (REPO / "requirements.txt").read_text().splitlines()
    # What the script greps out of requirements.txt must be there, once, pinned.
    assert sum(line.startswith("torch==") for line in requirements) == 1
    dropped = [line for line in requirements if line.startswith("ros-jazzy-")]
    assert dropped and all("ros-jazzy-" in line for line in dropped)
    gpu_runs = [args for kind, args in instructions(DOCKERFILES[1]) if kind == "RUN" and "install.sh" in args]
    cpu_runs = [args for kind, args in instructions(DOCKERFILES[0]) if kind == "RUN" and "install.sh" in args]
    assert gpu_runs == ["docker/install.sh --gpu"] and cpu_runs == ["docker/install.sh"]


def test_gpu_wheel_is_the_cpu_wheels_version():
    assert pin(REPO / "requirements-gpu.txt", "onnxruntime-gpu") == pin(REPO / "requirements.txt", "onnxruntime")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_leaves_out_build_products_but_not_sources(dockerfile):
    ignore = Path(f"{dockerfile}.dockerignore").read_text().split("\n")
    patterns = {line.strip() for line in ignore if line.strip() and not line.startswith("#")}
    assert {".venv", "artifacts", ".git", "ros2_ws/install", "ros2_ws/build"} <= patterns
    for needed in ("models", "sim", "launch", "ros2_ws/src", "docker", "requirements.txt", "requirements-gpu.txt"):
        assert not any(fnmatch.fnmatch(needed, p) for p in patterns), needed


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_setup_gpu_swaps_the_wheels(tmp_path):
    for name in ("Makefile", "requirements.txt", "requirements-gpu.txt"):
        shutil.copy(REPO / name, tmp_path)
    for package in ("morec", "morec_ros"):
        (tmp_path / "ros2_ws" / "src" / package).mkdir(parents=True)
        (tmp_path / "ros2_ws" / "src" / package / "setup.py").touch()
    (tmp_path / ".venv").mkdir()
    stamp = tmp_path / ".venv" / ".installed"
    stamp.touch()
    os.utime(stamp, (os.path.getmtime(tmp_path / "Makefile") + 10,) * 2)  # a venv set up after its files

    def dry_run(*args):
        # --no-print-directory: under `make test` this is a sub-make, which would print "Entering directory".
        done = subprocess.run(["make", "--no-print-directory", "-n", "setup", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    gpu = dry_run("GPU=1")
    uninstall = gpu.index(".venv/bin/python -m pip uninstall --quiet --yes onnxruntime")
    assert "-r requirements-gpu.txt" in gpu[uninstall + 1]
    assert not any("install" in line for line in dry_run())  # a CPU venv that is up to date: nothing to do
    (tmp_path / ".venv" / ".gpu-installed").touch()
    os.utime(tmp_path / ".venv" / ".gpu-installed", (os.path.getmtime(stamp) + 10,) * 2)
    assert not any("install" in line for line in dry_run())  # the GPU choice sticks to the venv
    back = dry_run("GPU=0")
    assert "uninstall --quiet --yes onnxruntime-gpu" in back[0] and "^onnxruntime==" in back[1]
