"""morec-stack ROS 2 nodes: thin wrappers turning messages into morec core calls and back."""
