"""The student controller alone, for a robot: its driver publishes the sensors, a ros2_control
forward_command_controller takes the commands.

    ros2 launch distill_ros student.launch.py checkpoint:=/path/to/student \\
        joint_states:=/joint_states imu:=/imu_sensor_broadcaster/imu \\
        commands:=/forward_effort_controller/commands

The node starts unconfigured unless auto_activate:=true; drive it with
`ros2 lifecycle set /student_controller_node configure` then `activate` (or a lifecycle manager).

The graph (nodes, parameter files, parameters, remappings, launch arguments, when it ends) is
described once, in distill_ros/graphs.py; `distill-ros demo` and the tests start the same
description as processes. `ros2 launch distill_ros student.launch.py --show-args` lists the arguments.
"""
from distill_ros.graphs import launch_description


def generate_launch_description():
    return launch_description('student')
