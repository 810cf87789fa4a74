"""Where the files shipped beside the code are: task specs and models (package morec), launch files,
configs and parameter files (package morec_ros).

A colcon or distro install copies them to share/<package> of its prefix and lists the package in the
ament resource index there. An editable pip install leaves them in the source checkout, whose root has
the same layout (sim/, models/, launch/). The lookup is ament_index_python's, written out because this
package imports nothing from ROS.
"""

from __future__ import annotations

import os
from pathlib import Path

# morec/share.py -> ros2_ws/src/morec -> ros2_ws/src -> ros2_ws -> repository root
SOURCE_ROOT = Path(__file__).resolve().parents[4]


def package_prefix(package: str) -> Path | None:
    """The first prefix on $AMENT_PREFIX_PATH whose ament resource index lists `package`, if any."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix and Path(prefix, "share", "ament_index", "resource_index", "packages", package).is_file():
            return Path(prefix)
    return None


def share_dir(package: str) -> Path:
    """share/<package> of the install that the ament index lists, else the source checkout's root."""
    prefix = package_prefix(package)
    return prefix / "share" / package if prefix else SOURCE_ROOT
