"""Record a dataset (and optionally a bag) with the privileged teacher driving the simulator:

    ros2 launch distill_ros sim_teacher_record.launch.py task:=cartpole episodes:=20 dataset:=data/cartpole

sim_node (lockstep, stamped JointState commands from teacher/action) + teacher_node + recorder_node,
each with its parameter file from the package's config/ folder.
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
    task, episodes = LaunchConfiguration('task'), LaunchConfiguration('episodes')
    namespace = LaunchConfiguration('namespace')
    arguments = [
        DeclareLaunchArgument('task', default_value='cartpole', description='task name or task YAML path'),
        DeclareLaunchArgument('episodes', default_value='10', description='episodes to simulate and record'),
        DeclareLaunchArgument('seed', default_value='0', description='seed of the first episode'),
        DeclareLaunchArgument('dataset', default_value='data/cartpole', description='dataset folder'),
        DeclareLaunchArgument('bag', default_value='', description="rosbag2 folder to write ('' for none)"),
        DeclareLaunchArgument('teacher_checkpoint', default_value='', description="'' = the shipped teacher"),
        DeclareLaunchArgument('namespace', default_value='', description='namespace for every topic'),
        DeclareLaunchArgument('sim_params_file', default_value=config('sim.yaml'),
                              description='sim parameters file'),
        DeclareLaunchArgument('teacher_params_file', default_value=config('teacher.yaml'),
                              description='teacher parameters file'),
        DeclareLaunchArgument('recorder_params_file', default_value=config('recorder.yaml'),
                              description='recorder parameters file'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='nodes follow /clock'),
    ]
    sim = Node(package='distill_ros', executable='sim_node', name='sim_node', namespace=namespace, output='screen',
               parameters=params('sim', {'task': task, 'mode': 'lockstep', 'command_type': 'JointState',
                                          'max_episodes': episodes, 'seed': LaunchConfiguration('seed'),
                                          'wait_for_subscribers': 1}),
               remappings=[('commands', 'teacher/action')])
    teacher = Node(package='distill_ros', executable='teacher_node', name='teacher_node', namespace=namespace,
                   output='screen',
                   parameters=params('teacher', {'task': task, 'wait_for_subscribers': 2, 'checkpoint': ParameterValue(
                       LaunchConfiguration('teacher_checkpoint'), value_type=str)}))
    recorder = Node(package='distill_ros', executable='recorder_node', name='recorder_node', namespace=namespace,
                    output='screen',
                    parameters=params('recorder', {
                        'task': task, 'max_episodes': episodes,
                        'dataset': ParameterValue(LaunchConfiguration('dataset'), value_type=str),
                        'bag': ParameterValue(LaunchConfiguration('bag'), value_type=str)}))
    return LaunchDescription([*arguments, sim, teacher, recorder])
