"""morec: offline datasets, ensemble dynamics, MOREC dynamics reward, filtered rollouts, ONNX export.

Pure Python core of morec-stack; it never imports ROS.
"""

__version__ = "0.1.0"
