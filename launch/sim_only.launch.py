"""The 'sim_only' config of morec.launch.py: ros2 launch morec_ros sim_only.launch.py [domain_id:=N]"""

import os

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource


def generate_launch_description():
    main = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'morec.launch.py')
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(main),
                                 launch_arguments={'config': 'sim_only'}.items()),
    ])
