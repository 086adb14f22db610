"""The student controller alone, for a robot: its driver publishes the sensors, a ros2_control
forward_command_controller takes the commands.

    ros2 launch distill_ros student.launch.py checkpoint:=/path/to/student \\
        joint_states:=/joint_states imu:=/imu_sensor_broadcaster/imu \\
        commands:=/forward_effort_controller/commands

The node starts unconfigured unless auto_activate:=true; drive it with
`ros2 lifecycle set /student_controller_node configure` then `activate` (or a lifecycle manager).
"""
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument('checkpoint', default_value='cartpole',
                              description='student checkpoint folder or shipped student name'),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('distill_ros'), 'config', 'student_controller.yaml']),
            description='student_controller_node parameters'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace for every topic'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='follow /clock (simulation)'),
        DeclareLaunchArgument('auto_activate', default_value='false',
                              description='configure and activate at start (no lifecycle manager)'),
        DeclareLaunchArgument('joint_states', default_value='joint_states', description='JointState input topic'),
        DeclareLaunchArgument('imu', default_value='imu/data', description='Imu input topic'),
        DeclareLaunchArgument('commands', default_value='commands',
                              description='Float64MultiArray output (a forward_command_controller commands topic)'),
        DeclareLaunchArgument('estop', default_value='estop', description='Bool e-stop input topic'),
    ]
    controller = Node(
        package='distill_ros', executable='student_controller_node', name='student_controller_node',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'), {
            'checkpoint': ParameterValue(LaunchConfiguration('checkpoint'), value_type=str),
            'auto_activate': ParameterValue(LaunchConfiguration('auto_activate'), value_type=bool),
            'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)}],
        remappings=[('joint_states', LaunchConfiguration('joint_states')),
                    ('imu/data', LaunchConfiguration('imu')),
                    ('commands', LaunchConfiguration('commands')),
                    ('estop', LaunchConfiguration('estop'))])
    return LaunchDescription([*arguments, controller])
