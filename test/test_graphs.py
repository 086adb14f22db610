"""distill_ros/graphs.py, the one description of each process graph: every launch file is its graph,
every parameter it sets is one the node declares, with the node's type, and arguments resolve as
`ros2 launch` resolves them."""
from __future__ import annotations

import ast
import importlib

import pytest
import yaml

from distill_ros.graphs import GRAPHS, Ref
from distill_ros.paths import share_dir


def launch_files() -> dict[str, ast.Module]:
    return {p.name.removesuffix('.launch.py'): ast.parse(p.read_text())
            for p in sorted((share_dir() / 'launch').glob('*.launch.py'))}


def test_every_launch_file_is_its_graph_and_nothing_else():
    files = launch_files()
    assert sorted(files) == sorted(GRAPHS)
    for name, module in files.items():
        generate = [n for n in module.body if isinstance(n, ast.FunctionDef)]
        assert [f.name for f in generate] == ['generate_launch_description'], name
        (statement,) = generate[0].body
        call = statement.value
        assert isinstance(statement, ast.Return) and isinstance(call, ast.Call), name
        assert call.func.id == 'launch_description' and [a.value for a in call.args] == [name], name
        imports = [n for n in module.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert [(i.module, [a.name for a in i.names]) for i in imports] == [('distill_ros.graphs',
                                                                             ['launch_description'])], name


@pytest.mark.parametrize('graph', sorted(GRAPHS))
def test_every_parameter_is_declared_by_its_node_with_its_type(graph):
    pytest.importorskip('rclpy')
    g = GRAPHS[graph]
    for spec in g.nodes:
        declared = {p.name: p for p in importlib.import_module(f'distill_ros.nodes.{spec.executable}').PARAMS}
        declared['use_sim_time'] = type('UseSimTime', (), {'default': False})
        for key, value in spec.parameters.items():
            assert key in declared, f'{graph}: {spec.executable} declares no parameter {key!r}'
            given = g.argument(value.name).type if isinstance(value, Ref) else type(value)
            assert given is type(declared[key].default), f'{graph}: {spec.executable}.{key} is {given.__name__}'
        for _, new in spec.remappings:
            if isinstance(new, Ref):
                g.argument(new.name)
        params_file = g.argument(spec.params_file)
        assert params_file.in_share
        data = yaml.safe_load(share_dir().joinpath(*params_file.default.split('/')).read_text())
        assert f'/**/{spec.executable}' in data, f'{params_file.default} has no section for {spec.executable}'


def test_arguments_resolve_as_ros2_launch_resolves_them(tmp_path):
    g = GRAPHS['sim_student']
    plain = g.resolve()
    assert [n.executable for n in plain] == ['sim_node', 'student_controller_node']
    assert plain[0].parameters['wait_for_subscribers'] == 1 and plain[0].parameters['max_episodes'] == 0
    assert plain[0].params_file == share_dir() / 'config' / 'sim.yaml'
    assert plain[0].parameters['command_source'] == 'sampled'
    walking = g.resolve(task='quadruped', checkpoint='s', command_source='cmd_vel')
    assert walking[0].parameters['command_source'] == 'cmd_vel' and walking[0].parameters['task'] == 'quadruped'
    recording = g.resolve(dataset=str(tmp_path), episodes='3', realtime_factor='2', trigger='sensor')
    assert [n.executable for n in recording] == ['sim_node', 'student_controller_node', 'recorder_node']
    sim, controller, recorder = recording
    assert sim.parameters['wait_for_subscribers'] == 2  # the recorder listens too
    assert sim.parameters['max_episodes'] == recorder.parameters['max_episodes'] == 3
    assert sim.parameters['realtime_factor'] == 2.0 and controller.parameters['trigger'] == 'sensor'
    assert [n.finishes for n in recording] == [True, False, True]
    student = GRAPHS['student'].resolve(commands='/fwd/commands', use_sim_time='true', namespace='robot')
    assert ('commands', '/fwd/commands') in student[0].remappings and student[0].namespace == 'robot'
    assert student[0].parameters['use_sim_time'] is True
    assert GRAPHS['sim_teacher_record'].resolve(teacher_checkpoint='')[1].parameters['checkpoint'] == ''
    with pytest.raises(ValueError, match="needs the launch argument 'student'"):
        GRAPHS['dagger'].resolve()
    with pytest.raises(ValueError, match=r"no launch arguments \['episode'\]"):
        GRAPHS['dagger'].resolve(student='s', episode=2)
    with pytest.raises(ValueError, match="'episodes' is 'two'"):
        GRAPHS['dagger'].resolve(student='s', episodes='two')


def test_launch_description_declares_the_graph():
    """Where ROS 2 launch is installed: the launch file's LaunchDescription has the graph's
    arguments and one Node action per node (the launch_pytest tests run them)."""
    pytest.importorskip('launch_ros', reason='ROS 2 launch_ros is not installed (on no registry reachable here)')
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    from distill_ros.graphs import launch_description
    for name, g in GRAPHS.items():
        entities = launch_description(name).entities
        declared = [e.name for e in entities if isinstance(e, DeclareLaunchArgument)]
        assert declared == [a.name for a in g.arguments], name
        assert len([e for e in entities if isinstance(e, Node)]) == len(g.nodes), name
