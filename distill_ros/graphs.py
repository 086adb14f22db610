"""Each process graph of distill_ros, described once: which node executables run, with which
parameter files, parameters and remappings, given the launch arguments.

Three users read the same description, so they cannot drift apart:

- `launch/<graph>.launch.py` turns it into launch_ros `Node` actions (`launch_description`, which
  imports `launch` only when called);
- `distill-ros demo` and the process-based tests start the same nodes as processes
  (`distill_ros.procs.GraphProcesses`, from `Graph.resolve`);
- test/test_graphs.py checks every parameter against the parameters each node declares.

Pure Python: neither `launch` nor rclpy is imported at module level.

How a graph ends: nodes marked `finishes` exit by themselves when their work is done (sim_node and
recorder_node with max_episodes, distill_node). When all of those that were started have exited,
or when any node exits with a failure, the rest are stopped with SIGINT (under `ros2 launch`: a
Shutdown event). A graph with no finishing node (or max_episodes 0) runs until Ctrl-C.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = 'distill_ros'


@dataclass(frozen=True)
class Arg:
    """A launch argument. `default` is its text as on the `ros2 launch` command line (None: required);
    `type` is the type of the parameters it feeds; `in_share`: the default is a path inside the
    package's share folder (`config/sim.yaml`)."""
    name: str
    default: str | None
    description: str
    type: type = str
    in_share: bool = False

    def convert(self, value: Any) -> Any:
        """`value` (text from the command line, or a Python value) as this argument's type."""
        if self.type is bool and not isinstance(value, bool):
            text = str(value).strip().lower()
            if text not in ('true', 'false'):
                raise ValueError(f'launch argument {self.name!r} is {value!r}; expected true or false')
            return text == 'true'
        try:
            return self.type(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'launch argument {self.name!r} is {value!r}; expected a {self.type.__name__}') from exc


@dataclass(frozen=True)
class Ref:
    """A parameter value or remapping target taken from the launch argument `name`."""
    name: str


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph. `params_file` names the launch argument holding its parameters file;
    `parameters` override that file (literals, or `Ref` to an argument); `when` starts the node only
    when that argument is not '' (`'!name'`: only when it is '')."""
    executable: str
    params_file: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, Any], ...] = ()
    when: str | None = None
    finishes: bool = False

    @property
    def name(self) -> str:
        return self.executable


@dataclass(frozen=True)
class ResolvedNode:
    """A node with every argument filled in: what a process is started with."""
    executable: str
    name: str
    namespace: str
    params_file: Path
    parameters: dict[str, Any]
    remappings: list[tuple[str, str]]
    finishes: bool


@dataclass(frozen=True)
class Graph:
    name: str
    arguments: tuple[Arg, ...]
    nodes: tuple[NodeSpec, ...]

    def argument(self, name: str) -> Arg:
        for arg in self.arguments:
            if arg.name == name:
                return arg
        raise KeyError(f'graph {self.name!r} has no launch argument {name!r}')

    def values(self, **arguments: Any) -> dict[str, Any]:
        """Every argument's value, typed: the given ones, else the defaults (as `ros2 launch` would)."""
        unknown = sorted(set(arguments) - {a.name for a in self.arguments})
        if unknown:
            raise ValueError(f'{self.name}.launch.py has no launch arguments {unknown}; '
                             f'it has {[a.name for a in self.arguments]}')
        values = {}
        for arg in self.arguments:
            if arg.name in arguments:
                value = arguments[arg.name]
            elif arg.default is None:
                raise ValueError(f'{self.name}.launch.py needs the launch argument {arg.name!r} ({arg.description})')
            elif arg.in_share:
                from distill_ros.paths import share_dir
                value = str(share_dir().joinpath(*arg.default.split('/')))
            else:
                value = arg.default
            values[arg.name] = arg.convert(value)
        return values

    def resolve(self, **arguments: Any) -> list[ResolvedNode]:
        """The nodes `ros2 launch distill_ros <name>.launch.py arg:=value ...` starts, in order."""
        values = self.values(**arguments)

        def fill(value: Any) -> Any:
            return values[value.name] if isinstance(value, Ref) else value

        nodes = []
        for spec in self.nodes:
            if not starts(spec, lambda name: str(values[name])):
                continue
            nodes.append(ResolvedNode(
                executable=spec.executable, name=spec.name, namespace=values['namespace'],
                params_file=Path(values[spec.params_file]),
                parameters={key: fill(value) for key, value in spec.parameters.items()},
                remappings=[(old, str(fill(new))) for old, new in spec.remappings], finishes=spec.finishes))
        return nodes


def starts(spec: NodeSpec, text: Any) -> bool:
    """Whether `spec` is started, given `text(argument name)` -> the argument's value as text."""
    if spec.when is None:
        return True
    name = spec.when.lstrip('!')
    return (text(name) == '') == spec.when.startswith('!')


# ---------------------------------------------------------------------------------------- the graphs
def _config(name: str, node: str) -> Arg:
    return Arg(f'{node}_params_file', f'config/{name}', f'{node} parameters file', in_share=True)


NAMESPACE = Arg('namespace', '', 'namespace for every node and topic')
USE_SIM_TIME = Arg('use_sim_time', 'false', 'nodes follow /clock (sim_node is the clock and never does; a student '
                   'controller under the simulator always does)', bool)
TASK = Arg('task', 'cartpole', 'task name (config/tasks/) or task YAML path')
SIM_TIME = {'use_sim_time': Ref('use_sim_time')}


def _sim_lockstep(commands: str, wait_for_subscribers: int, lockstep_timeout: float | None = None,
                  wait_for_privileged_subscribers: int = 0) -> NodeSpec:
    """sim_node stepping once per command stamped with the observation it answers (JointState on
    `commands`), holding the first episode until `wait_for_subscribers` take joint_states (and
    `wait_for_privileged_subscribers` privileged/state)."""
    parameters = {'task': Ref('task'), 'mode': 'lockstep', 'command_type': 'JointState',
                  'max_episodes': Ref('episodes'), 'seed': Ref('seed'), 'wait_for_subscribers': wait_for_subscribers,
                  'wait_for_privileged_subscribers': wait_for_privileged_subscribers}
    if lockstep_timeout is not None:
        parameters['lockstep_timeout'] = lockstep_timeout
    return NodeSpec('sim_node', 'sim_params_file', parameters, remappings=(('commands', commands),), finishes=True)


SIM = Graph('sim', (
    TASK,
    Arg('mode', 'realtime', 'lockstep or realtime'),
    Arg('seed', '0', 'seed of the first episode', int),
    NAMESPACE,
    Arg('params_file', 'config/sim.yaml', 'sim_node parameters file', in_share=True),
), (
    NodeSpec('sim_node', 'params_file', {'task': Ref('task'), 'mode': Ref('mode'), 'seed': Ref('seed')}),
))

SIM_TEACHER_RECORD = Graph('sim_teacher_record', (
    TASK,
    Arg('episodes', '10', 'episodes to simulate and record; the launch ends after them', int),
    Arg('seed', '0', 'seed of the first episode (and of the sampling teacher)', int),
    Arg('dataset', 'data/cartpole', 'dataset folder to write'),
    Arg('bag', '', "rosbag2 folder to write ('' for none)"),
    Arg('teacher_checkpoint', '', "teacher checkpoint folder ('' = the shipped teacher)"),
    Arg('teacher_deterministic', 'true', "false: the teacher samples its Gaussian, visiting and labelling off-path "
        "states (DART)", bool),
    NAMESPACE, USE_SIM_TIME,
    _config('sim.yaml', 'sim'), _config('teacher.yaml', 'teacher'), _config('recorder.yaml', 'recorder'),
), (
    # The simulator starts when the recorder takes joint_states; the teacher answers once the
    # simulator and the recorder both take its actions.
    _sim_lockstep('teacher/action', wait_for_subscribers=1),
    NodeSpec('teacher_node', 'teacher_params_file', {
        'task': Ref('task'), 'checkpoint': Ref('teacher_checkpoint'), 'deterministic': Ref('teacher_deterministic'),
        'seed': Ref('seed'), 'wait_for_subscribers': 2, **SIM_TIME}),
    NodeSpec('recorder_node', 'recorder_params_file', {
        'task': Ref('task'), 'max_episodes': Ref('episodes'), 'dataset': Ref('dataset'), 'bag': Ref('bag'),
        'teacher': True, **SIM_TIME}, finishes=True),
))

DISTILL = Graph('distill', (
    Arg('dataset', '', 'dataset folder (or give bag)'),
    Arg('bag', '', 'rosbag2 bag folder (MCAP or sqlite3)'),
    Arg('task', 'cartpole', 'task of the bag / of the shipped teacher'),
    Arg('teacher', '', "teacher checkpoint ('' = shipped)"),
    Arg('config', 'config/distill/default.yaml', 'distillation YAML', in_share=True),
    Arg('out', None, 'output folder (OUT/student is the result)'),
    Arg('params_file', 'config/distill_node.yaml', 'distill_node parameters file', in_share=True),
    NAMESPACE, USE_SIM_TIME,
), (
    NodeSpec('distill_node', 'params_file', {
        'dataset': Ref('dataset'), 'bag': Ref('bag'), 'task': Ref('task'), 'teacher': Ref('teacher'),
        'config': Ref('config'), 'out': Ref('out'), **SIM_TIME}, finishes=True),
))

# The student controller where a simulator drives it: active at start, a fresh history per
# episode (sim/episode), as in training, and on the simulator's clock (sensor stamps are sim time:
# a student that reads its sample age takes now - stamp).
_STUDENT_IN_SIM = {'auto_activate': True, 'episode_topic': 'sim/episode', 'use_sim_time': True}

DAGGER = Graph('dagger', (
    TASK,
    Arg('student', None, 'student checkpoint folder (e.g. OUT/student of distill)'),
    Arg('episodes', '8', 'episodes the student drives; the launch ends after them', int),
    Arg('seed', '500000', 'seed of the first episode', int),
    Arg('dataset', 'data/dagger_round1', 'dataset folder to write'),
    Arg('teacher_checkpoint', '', "teacher checkpoint folder ('' = the shipped teacher)"),
    NAMESPACE, USE_SIM_TIME,
    _config('sim.yaml', 'sim'), _config('teacher.yaml', 'teacher'), _config('recorder.yaml', 'recorder'),
    _config('student_controller.yaml', 'controller'),
), (
    NodeSpec('recorder_node', 'recorder_params_file', {
        'task': Ref('task'), 'max_episodes': Ref('episodes'), 'dataset': Ref('dataset'), 'teacher': True,
        **SIM_TIME}, finishes=True),
    # subscribes to privileged/state once the recorder takes its labels: when the simulator sees that
    # subscription, no label of the first state can be lost
    NodeSpec('teacher_node', 'teacher_params_file', {
        'task': Ref('task'), 'checkpoint': Ref('teacher_checkpoint'), 'wait_for_subscribers': 1, **SIM_TIME}),
    # trigger sensor: one command per observation, stamped with it (JointState on joint_commands),
    # so the safe actions it sends while it waits for data never step the simulator
    NodeSpec('student_controller_node', 'controller_params_file', {
        'checkpoint': Ref('student'), 'trigger': 'sensor', 'sensor_timeout': 5.0, 'publish_joint_commands': True,
        # active at once (no joint-name check at configure, which would take the first observation)
        'sensor_check_timeout': 0.0, **_STUDENT_IN_SIM}),
    # starts when the recorder and the student take the sensors and the teacher and the recorder the
    # privileged state (the teacher labels states it does not drive: none may go out before it
    # listens); never re-publishes an observation being answered
    _sim_lockstep('joint_commands', wait_for_subscribers=2, lockstep_timeout=30.0, wait_for_privileged_subscribers=2),
))


def _sim_realtime(wait_for_subscribers: int, when: str) -> NodeSpec:
    return NodeSpec('sim_node', 'sim_params_file', {
        'task': Ref('task'), 'mode': 'realtime', 'seed': Ref('seed'), 'realtime_factor': Ref('realtime_factor'),
        'max_episodes': Ref('episodes'), 'wait_for_subscribers': wait_for_subscribers,
        'command_source': Ref('command_source')}, when=when, finishes=True)


SIM_STUDENT = Graph('sim_student', (
    TASK,
    Arg('checkpoint', 'cartpole', 'student checkpoint folder or shipped student name'),
    Arg('seed', '0', 'seed of the first episode', int),
    Arg('episodes', '0', 'episodes to run, then the launch ends (0: until stopped)', int),
    Arg('dataset', '', "record the student's episodes into this dataset folder ('' for none)"),
    Arg('realtime_factor', '1.0', 'simulated seconds per wall-clock second', float),
    Arg('control_rate_hz', '0.0', "controller rate; 0: the student's training rate (right at realtime_factor 1; "
        'otherwise give the task rate times realtime_factor)', float),
    Arg('trigger', 'timer', "controller trigger: timer (its own deadlines, as on a robot) or sensor (each new "
        "sample)"),
    Arg('command_source', 'sampled', "a task with a velocity command (quadruped): sampled per episode, or cmd_vel "
        "(geometry_msgs/Twist on cmd_vel drives the simulator and the student alike; zero velocity without one)"),
    NAMESPACE, USE_SIM_TIME,
    _config('sim.yaml', 'sim'), _config('student_controller.yaml', 'controller'),
    _config('recorder.yaml', 'recorder'),
), (
    # the simulator holds its first observation until the controller (and the recorder) listen
    _sim_realtime(1, when='!dataset'),
    _sim_realtime(2, when='dataset'),
    NodeSpec('student_controller_node', 'controller_params_file', {
        'checkpoint': Ref('checkpoint'), 'control_rate_hz': Ref('control_rate_hz'), 'trigger': Ref('trigger'),
        'sensor_check_timeout': 30.0,  # configure checks the joint names on the first sample; sim_node may take
        **_STUDENT_IN_SIM}),  # seconds to start
    NodeSpec('recorder_node', 'recorder_params_file', {
        'task': Ref('task'), 'max_episodes': Ref('episodes'), 'dataset': Ref('dataset'), 'teacher': False,
        **SIM_TIME}, when='dataset', finishes=True),
))

STUDENT = Graph('student', (
    Arg('checkpoint', 'cartpole', 'student checkpoint folder or shipped student name'),
    Arg('params_file', 'config/student_controller.yaml', 'student_controller_node parameters file', in_share=True),
    NAMESPACE,
    Arg('use_sim_time', 'false', 'follow /clock (simulation)', bool),
    Arg('auto_activate', 'false', 'configure and activate at start (no lifecycle manager)', bool),
    Arg('joint_states', 'joint_states', 'JointState input topic'),
    Arg('imu', 'imu/data', 'Imu input topic'),
    Arg('commands', 'commands', 'Float64MultiArray output (a forward_command_controller commands topic)'),
    Arg('estop', 'estop', 'Bool e-stop input topic'),
), (
    NodeSpec('student_controller_node', 'params_file', {
        'checkpoint': Ref('checkpoint'), 'auto_activate': Ref('auto_activate'), **SIM_TIME},
        remappings=(('joint_states', Ref('joint_states')), ('imu/data', Ref('imu')),
                    ('commands', Ref('commands')), ('estop', Ref('estop')))),
))

GRAPHS: dict[str, Graph] = {g.name: g for g in (SIM, SIM_TEACHER_RECORD, DISTILL, DAGGER, SIM_STUDENT, STUDENT)}


# ---------------------------------------------------------------------------------------- ros2 launch
def launch_description(name: str):
    """`launch/<name>.launch.py`'s LaunchDescription: the graph's arguments, its nodes as launch_ros
    `Node` actions, and the handler that ends the launch as described at the top of this module."""
    from launch import LaunchDescription
    graph = GRAPHS[name]
    nodes = [_node_action(graph, spec) for spec in graph.nodes]
    specs = {id(node): spec for node, spec in zip(nodes, graph.nodes)}
    return LaunchDescription([*map(_declare, graph.arguments), *nodes, _end_when_done(name, specs)])


def _declare(arg: Arg):
    """A launch argument as DeclareLaunchArgument; a default in the share folder is found there."""
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare
    if arg.default is None:
        return DeclareLaunchArgument(arg.name, description=arg.description)
    default = (PathJoinSubstitution([FindPackageShare(PACKAGE), *arg.default.split('/')]) if arg.in_share
               else arg.default)
    return DeclareLaunchArgument(arg.name, default_value=default, description=arg.description)


def _node_action(graph: Graph, spec: NodeSpec):
    """A node as a launch_ros Node: its parameters file, then its parameters (an argument's value
    typed as the argument says: '' stays a string, '8' an int), its remappings, and the condition
    its `when` gives."""
    from launch.conditions import IfCondition
    from launch.substitutions import EqualsSubstitution, LaunchConfiguration, NotEqualsSubstitution
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    def parameter(value: Any) -> Any:
        if isinstance(value, Ref):
            return ParameterValue(LaunchConfiguration(value.name), value_type=graph.argument(value.name).type)
        return value

    def remap(value: Any) -> Any:
        return LaunchConfiguration(value.name) if isinstance(value, Ref) else value

    condition = None
    if spec.when is not None:
        argument = LaunchConfiguration(spec.when.lstrip('!'))
        compare = EqualsSubstitution if spec.when.startswith('!') else NotEqualsSubstitution
        condition = IfCondition(compare(argument, ''))
    return Node(package=PACKAGE, executable=spec.executable, name=spec.name, namespace=LaunchConfiguration('namespace'),
                output='screen', condition=condition,
                parameters=[LaunchConfiguration(spec.params_file),
                            {key: parameter(value) for key, value in spec.parameters.items()}],
                remappings=[(old, remap(new)) for old, new in spec.remappings])


def _end_when_done(name: str, specs: dict[int, NodeSpec]):
    """The handler that ends the launch (a Shutdown event): when a node fails, or once every
    finishing node that was started has exited. `specs`: id(Node action) -> its spec."""
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.events import Shutdown
    exited: set[int] = set()

    def on_exit(event, context):
        spec = specs.get(id(event.action))
        if spec is None or context.is_shutdown:
            return None
        if event.returncode != 0:
            return [EmitEvent(event=Shutdown(reason=f'{spec.name} exited with status {event.returncode}'))]
        exited.add(id(event.action))
        finishers = [key for key, s in specs.items()
                     if s.finishes and starts(s, lambda n: context.launch_configurations.get(n, ''))]
        if finishers and set(finishers) <= exited:
            return [EmitEvent(event=Shutdown(reason=f'{name}: done'))]
        return None

    return RegisterEventHandler(OnProcessExit(on_exit=on_exit))
