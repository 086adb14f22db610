"""Property-based tests over the readers that take outside input: a JointState or Imu of any
length, content and name order, a task YAML, a distill config and a checkpoint's policy.json.
Each input converts exactly or is refused with one line of the project's own error types; never a
traceback of another kind, never a wrong value."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_ros.distill.config import ConfigError, parse_config
from distill_ros.observation import SensorMessageError
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.sim import DistillEnv, TaskConfigError
from distill_ros.sim.task import parse_task

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
QUAD = DistillEnv('quadruped', randomize=False, sensor_noise=False, latency=False)
JOINTS = list(QUAD.sensor_builder.joints)


def one_line(exc: BaseException) -> None:
    assert '\n' not in str(exc) and str(exc), repr(exc)


def vector3(values):
    return SimpleNamespace(x=values[0], y=values[1], z=values[2])


@FAST
@given(names=st.permutations(JOINTS + ['extra_joint']),
       positions=st.lists(FLOATS, max_size=16) | st.lists(st.floats(-10, 10), min_size=13, max_size=13),
       velocities=st.lists(FLOATS, max_size=16) | st.lists(st.floats(-10, 10), min_size=13, max_size=13),
       imu=st.lists(FLOATS, min_size=10, max_size=10) | st.lists(st.floats(-2, 2), min_size=10, max_size=10))
def test_joint_states_and_imu_of_any_shape_convert_exactly_or_are_refused_in_one_line(names, positions, velocities,
                                                                                       imu):
    """Joints by name in any order with an extra joint; arrays of any length; NaN/Inf anywhere."""
    builder = QUAD.sensor_builder
    joints = SimpleNamespace(name=list(names), position=positions, velocity=velocities, effort=[])
    msg = SimpleNamespace(angular_velocity=vector3(imu[0:3]), linear_acceleration=vector3(imu[3:6]),
                          orientation=SimpleNamespace(x=imu[6], y=imu[7], z=imu[8], w=imu[9]),
                          orientation_covariance=[0.0] * 9, angular_velocity_covariance=[0.0] * 9,
                          linear_acceleration_covariance=[0.0] * 9)
    try:
        obs = builder.build_from_messages(joints, msg, command=(0.1, 0.0, 0.0))
    except SensorMessageError as exc:
        one_line(exc)
        return
    assert np.isfinite(obs).all()
    spec_names = builder.spec.element_names()
    for key, values in (('joint_position', positions), ('joint_velocity', velocities)):
        by_name = dict(zip(names, values))
        for joint in JOINTS:                              # every joint's value is its own, whatever the order
            assert obs[spec_names.index(f'{key}/{joint}')] == by_name[joint]


SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=8)
TASK_TEXT = st.recursive(SCALARS,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3), max_leaves=8)


@FAST
@given(env=st.dictionaries(st.sampled_from(['id', 'model', 'max_episode_steps', 'best_return', 'timestep', 'kwargs',
                                            'reset_noise_scale', 'add_floor', 'oops']), TASK_TEXT, max_size=4),
       sensors=st.dictionaries(st.sampled_from(['joints', 'joint_velocity', 'encoder', 'latency_steps',
                                                'sample_age']), TASK_TEXT, max_size=3))
def test_task_yamls_of_any_content_load_or_are_refused_in_one_line(env, sensors):
    try:
        spec = parse_task({'name': 'fuzz', 'env': env, 'sensors': sensors}, 'fuzz.yaml')
    except TaskConfigError as exc:
        one_line(exc)
        return
    assert spec.name == 'fuzz'


@FAST
@given(cfg=st.dictionaries(st.sampled_from(['train', 'student', 'losses', 'dagger', 'eval', 'oops']),
                           st.dictionaries(st.sampled_from(['steps', 'lr', 'batch_size', 'rounds', 'type', 'sizes',
                                                            'history', 'episodes', 'beta']), TASK_TEXT, max_size=3),
                           max_size=3))
def test_distill_configs_of_any_content_parse_or_are_refused_in_one_line(cfg):
    try:
        parse_config(cfg)
    except ConfigError as exc:
        one_line(exc)


@pytest.fixture(scope='module')
def shipped_spec():
    from distill_ros.students import shipped_student
    return json.loads((shipped_student('cartpole') / 'policy.json').read_text())


@FAST
@given(path=st.lists(st.sampled_from(['architecture', 'observation', 'action', 'fields', 'names', 'low', 'type',
                                      'hidden', 'source', 'history', 'deployment', 'task_file', 0]),
                     min_size=1, max_size=3), value=TASK_TEXT)
def test_a_damaged_policy_json_is_refused_in_one_line(tmp_path_factory, shipped_spec, path, value):
    """Any one value of a shipped student's policy.json replaced by anything: it loads (the change was
    harmless) or is refused with one line naming the file; never another exception."""
    import copy
    import shutil

    from distill_ros.students import shipped_student
    folder = tmp_path_factory.mktemp('ckpt')
    shutil.copytree(shipped_student('cartpole'), folder, dirs_exist_ok=True)
    spec = copy.deepcopy(shipped_spec)
    node = spec
    for key in path[:-1]:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and node:
            node = node[0]
    if isinstance(node, dict):
        node[path[-1]] = value
    (folder / 'policy.json').write_text(json.dumps(spec))
    try:
        ckpt_io.load(folder)
    except ckpt_io.CheckpointError as exc:
        one_line(exc)
