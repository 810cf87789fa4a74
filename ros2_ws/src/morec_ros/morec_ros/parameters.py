"""Node parameters: what every node checks once its parameters are declared (no ONNX Runtime import, so the
sim node uses it too)."""


def reject_undeclared_parameters(node) -> None:
    """A parameter given to the node (a params file or -p) that it does not declare is a typo, not a no-op:
    rclpy ignores such overrides silently, so a misspelt key would run with the default."""
    unknown = sorted(set(node._parameter_overrides) - set(node._parameters))
    if unknown:
        valid = sorted(set(node._parameters) - {'start_type_description_service'})
        raise ValueError(f"{node.get_name()} has no parameter{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                         f"its parameters: {', '.join(valid)}")
