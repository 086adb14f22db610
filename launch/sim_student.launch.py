"""The simulated robot driven by a distilled student, as on hardware:

    ros2 launch distill_ros sim_student.launch.py checkpoint:=cartpole

sim_node in realtime mode (steps on the wall clock, holds the last command) + student_controller_node
(auto-activated), each with its parameter file from the package's config/ folder. The controller
reads only joint_states and imu/data; sim_node takes its Float64MultiArray on commands.
"""
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def config(name: str) -> PathJoinSubstitution:
    return PathJoinSubstitution([FindPackageShare('distill_ros'), 'config', name])


def params(node: str, overrides: dict) -> list:
    """The node's parameters file (a launch argument), use_sim_time, then these overrides."""
    return [LaunchConfiguration(f'{node}_params_file'),
            {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)}, overrides]


def generate_launch_description() -> LaunchDescription:
    namespace = LaunchConfiguration('namespace')
    arguments = [
        DeclareLaunchArgument('task', default_value='cartpole', description='task name or task YAML path'),
        DeclareLaunchArgument('checkpoint', default_value='cartpole',
                              description='student checkpoint folder or shipped student name'),
        DeclareLaunchArgument('seed', default_value='0', description='seed of the first episode'),
        DeclareLaunchArgument('realtime_factor', default_value='1.0',
                              description='simulated seconds per wall-clock second'),
        DeclareLaunchArgument('control_rate_hz', default_value='25.0',
                              description='controller rate: the task rate times realtime_factor'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace for every topic'),
        DeclareLaunchArgument('sim_params_file', default_value=config('sim.yaml'),
                              description='sim parameters file'),
        DeclareLaunchArgument('controller_params_file', default_value=config('student_controller.yaml'),
                              description='controller parameters file'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='nodes follow /clock'),
    ]
    sim = Node(package='distill_ros', executable='sim_node', name='sim_node', namespace=namespace, output='screen',
               parameters=params('sim', {'task': LaunchConfiguration('task'), 'mode': 'realtime',
                                          'seed': LaunchConfiguration('seed'),
                                          'realtime_factor': LaunchConfiguration('realtime_factor')}))
    controller = Node(
        package='distill_ros', executable='student_controller_node', name='student_controller_node',
        namespace=namespace, output='screen',
        parameters=params('controller', {
            'checkpoint': ParameterValue(LaunchConfiguration('checkpoint'), value_type=str),
            'control_rate_hz': ParameterValue(LaunchConfiguration('control_rate_hz'), value_type=float),
            'auto_activate': True, 'episode_topic': 'sim/episode',  # a fresh history per episode
            'sensor_check_timeout': 30.0}))  # sim_node may take seconds to start
    return LaunchDescription([*arguments, sim, controller])
