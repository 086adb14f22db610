"""One DAgger round over ROS 2 topics: the student drives the simulator, the teacher labels every
state the student visits, the recorder records both:

    ros2 launch distill_ros dagger.launch.py student:=runs/cartpole/student dataset:=data/dagger_round1 episodes:=8

sim_node (lockstep: each observation waits for the student's command, stamped JointState on
joint_commands) + student_controller_node (trigger sensor: one command per observation) +
teacher_node + recorder_node, with the package's parameter files. Then retrain on the aggregate:

    distill-ros distill --dataset ... (see docs/methods.md; the in-process path mixes teacher actions with beta)
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
        DeclareLaunchArgument('student', description='student checkpoint folder (e.g. OUT/student of distill)'),
        DeclareLaunchArgument('episodes', default_value='8', description='episodes the student drives'),
        DeclareLaunchArgument('seed', default_value='500000', description='seed of the first episode'),
        DeclareLaunchArgument('dataset', default_value='data/dagger_round1', description='dataset folder to write'),
        DeclareLaunchArgument('teacher_checkpoint', default_value='', description="'' = the shipped teacher"),
        DeclareLaunchArgument('namespace', default_value='', description='namespace for every topic'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='nodes follow /clock'),
        DeclareLaunchArgument('sim_params_file', default_value=config('sim.yaml'),
                              description='sim parameters file'),
        DeclareLaunchArgument('teacher_params_file', default_value=config('teacher.yaml'),
                              description='teacher parameters file'),
        DeclareLaunchArgument('recorder_params_file', default_value=config('recorder.yaml'),
                              description='recorder parameters file'),
        DeclareLaunchArgument('controller_params_file', default_value=config('student_controller.yaml'),
                              description='controller parameters file'),
    ]
    sim = Node(package='distill_ros', executable='sim_node', name='sim_node', namespace=namespace, output='screen',
               parameters=params('sim', {'task': task, 'mode': 'lockstep', 'command_type': 'JointState',
                                          'max_episodes': episodes, 'seed': LaunchConfiguration('seed'),
                                                # one command per observation: start when the recorder and
                                                # the student listen, take only commands stamped with the
                                                # observation they answer, never re-publish a pending one
                                          'wait_for_subscribers': 2, 'lockstep_timeout': 30.0}),
               remappings=[('commands', 'joint_commands')])
    student = Node(package='distill_ros', executable='student_controller_node', name='student_controller_node',
                   namespace=namespace, output='screen',
                   parameters=params('controller', {
                       'checkpoint': ParameterValue(LaunchConfiguration('student'), value_type=str),
                       'trigger': 'sensor', 'auto_activate': True,
                       # lockstep: the simulator waits for the student, so slow is not stale
                       'sensor_timeout': 5.0, 'sensor_check_timeout': 0.0, 'publish_joint_commands': True,
                       'episode_topic': 'sim/episode'}))
    teacher_checkpoint = ParameterValue(LaunchConfiguration('teacher_checkpoint'), value_type=str)
    teacher = Node(package='distill_ros', executable='teacher_node', name='teacher_node', namespace=namespace,
                   output='screen',
                   parameters=params('teacher', {'task': task,
                                                  'checkpoint': teacher_checkpoint}))
    recorder = Node(package='distill_ros', executable='recorder_node', name='recorder_node', namespace=namespace,
                    output='screen',
                    parameters=params('recorder', {
                        'task': task, 'max_episodes': episodes, 'teacher': True,
                        'dataset': ParameterValue(LaunchConfiguration('dataset'), value_type=str)}))
    return LaunchDescription([*arguments, recorder, teacher, student, sim])
