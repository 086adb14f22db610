"""Distil a student from a dataset or a bag with distill_node:

    ros2 launch distill_ros distill.launch.py dataset:=data/cartpole out:=runs/cartpole_student
    ros2 launch distill_ros distill.launch.py bag:=bags/robot_run task:=cartpole out:=runs/from_bag

Parameters come from the package's config/distill_node.yaml, then these arguments. The node
reports progress on /diagnostics, writes OUT/student and exits; the launch ends with it.
"""
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    def arg(name: str) -> ParameterValue:
        return ParameterValue(LaunchConfiguration(name), value_type=str)

    arguments = [
        DeclareLaunchArgument('dataset', default_value='', description='dataset folder (or give bag)'),
        DeclareLaunchArgument('bag', default_value='', description='rosbag2 bag folder (MCAP or sqlite3)'),
        DeclareLaunchArgument('task', default_value='cartpole', description='task of the bag / shipped teacher'),
        DeclareLaunchArgument('teacher', default_value='', description="teacher checkpoint ('' = shipped)"),
        DeclareLaunchArgument('config', default_value=PathJoinSubstitution(
            [FindPackageShare('distill_ros'), 'config', 'distill', 'default.yaml']), description='distillation YAML'),
        DeclareLaunchArgument('out', description='output folder (OUT/student is the result)'),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('distill_ros'), 'config', 'distill_node.yaml']), description='node parameters file'),
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock'),
    ]
    node = Node(package='distill_ros', executable='distill_node', name='distill_node',
                namespace=LaunchConfiguration('namespace'), output='screen',
                parameters=[LaunchConfiguration('params_file'), {
                    'dataset': arg('dataset'), 'bag': arg('bag'), 'task': arg('task'), 'teacher': arg('teacher'),
                    'config': arg('config'), 'out': arg('out'),
                    'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)}])
    done = RegisterEventHandler(OnProcessExit(target_action=node, on_exit=[EmitEvent(event=Shutdown())]))
    return LaunchDescription([*arguments, node, done])
