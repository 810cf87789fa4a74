"""Start the nodes of a config in launch/configs, with the same parameter files as `morec up`.

For ROS 2 distro installs (launch_ros has no wheels), once `colcon build` has installed this file with
configs/ and params/ beside it in share/morec_ros/launch:
    ros2 launch morec_ros morec.launch.py config:=sim_only domain_id:=7 task:=inverted_pendulum
As with `morec up`, every node also reads params/tasks/<task>.yaml when the task has one. With
one_process:=true the nodes run in one process (`morec_stack`, as `morec up --one-process`), each with
the arguments its own process would get: rclpy nodes cannot be loaded into a ComposableNodeContainer.
"""

import os
from pathlib import Path

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from morec.runner import STACK_EXECUTABLE, NodeProcess, configured_task, one_process_command, task_params

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs')


def _actions(context):
    config = LaunchConfiguration('config').perform(context)
    path = config if config.endswith('.yaml') else os.path.join(CONFIG_DIR, f'{config}.yaml')
    with open(path) as f:
        nodes = yaml.safe_load(f)['nodes']
    base = os.path.dirname(os.path.abspath(path))
    domain_id = LaunchConfiguration('domain_id').perform(context)
    task = LaunchConfiguration('task').perform(context)
    actions = [SetEnvironmentVariable('ROS_DOMAIN_ID', domain_id)] if domain_id else []
    one_process = LaunchConfiguration('one_process').perform(context).lower() == 'true'
    started = []  # (package, executable, name, parameter files, parameters set here)
    for node in nodes:
        params = node.get('params', [])
        params = [os.path.normpath(os.path.join(base, p)) for p in ([params] if isinstance(params, str) else params)]
        own = task_params(os.path.splitext(os.path.basename(task or configured_task(params) or ''))[0],
                          os.path.join(os.path.dirname(CONFIG_DIR), 'params'))
        started.append((node.get('package', 'morec_ros'), node['executable'], node['name'],
                        params + ([str(own)] if own else []), {'task': task} if task else {}))
    if one_process:  # the arguments `morec up --one-process` gives it
        arguments = one_process_command([NodeProcess(name, Path(executable), tuple(files), tuple(given.items()))
                                         for _, executable, name, files, given in started], Path(STACK_EXECUTABLE))
        return actions + [Node(package='morec_ros', executable=STACK_EXECUTABLE, arguments=arguments[1:],
                               output='screen', on_exit=Shutdown(reason=f'{STACK_EXECUTABLE} exited'))]
    for package, executable, name, files, given in started:
        actions.append(Node(
            package=package,
            executable=executable,
            name=name,
            parameters=files + ([given] if given else []),
            output='screen',
            # As `morec up`: a node that dies takes the stack down rather than leaving it half-alive.
            on_exit=Shutdown(reason=f'{name} exited')))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('config', default_value='full',
                              description='config name in launch/configs or a YAML path'),
        DeclareLaunchArgument('domain_id', default_value='', description='ROS_DOMAIN_ID for all nodes'),
        DeclareLaunchArgument('task', default_value='',
                              description="the task every node runs; '' = the one launch/params/stack.yaml sets"),
        DeclareLaunchArgument('one_process', default_value='false',
                              description='true: the nodes in one process (morec_stack, an executor thread each)'),
        OpaqueFunction(function=_actions),
    ])
