"""Every node's status on /diagnostics: one DiagnosticStatus named "<node>: <what>", values as strings."""

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

# The ROS-free loops (control_loop, command_guard) report their status by name.
LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN, 'error': DiagnosticStatus.ERROR}


def publish_diagnostics(node, publisher, what: str, level, message: str, hardware_id: str, values: dict) -> None:
    status = DiagnosticStatus(level=level, name=f'{node.get_name()}: {what}', message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(msg)
