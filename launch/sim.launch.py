"""Start the simulated robot alone: `ros2 launch distill_ros sim.launch.py task:=hopper mode:=realtime`.

It publishes joint_states, imu/data, privileged/state, sim/step, sim/episode and /clock, and takes
commands on `commands` (see `ros2 run distill_ros sim_node --ros-args --help` and config/sim.yaml).
"""
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument('task', default_value='cartpole', description='task name (config/tasks/) or YAML path'),
        DeclareLaunchArgument('mode', default_value='realtime', description='lockstep or realtime'),
        DeclareLaunchArgument('seed', default_value='0', description='seed of the first episode'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace for every topic'),
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution(
            [FindPackageShare('distill_ros'), 'config', 'sim.yaml']), description='sim_node parameters'),
    ]
    sim = Node(
        package='distill_ros', executable='sim_node', name='sim_node', namespace=LaunchConfiguration('namespace'),
        output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'),
                    {'task': LaunchConfiguration('task'), 'mode': LaunchConfiguration('mode'),
                     'seed': LaunchConfiguration('seed')}],  # sim_node is the clock: never use_sim_time
    )
    return LaunchDescription([*arguments, sim])
