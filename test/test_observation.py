"""The named observation layout, the shared sensor-observation builder and the student's history
window (run time and from a dataset)."""
from __future__ import annotations

import numpy as np
import pytest

from distill_ros.observation import (
    Field,
    HistoryBuffer,
    ObsSpec,
    SensorMismatch,
    SensorObsBuilder,
    SensorReading,
    history_steps,
    window_rows,
)
from distill_ros.sim import SENSOR, DistillEnv


def test_spec_slices_flatten_and_json_round_trip():
    spec = ObsSpec([Field('a', ('x', 'y')), Field('b', ('z',))])
    assert spec.size == 3
    assert spec.element_names() == ['a/x', 'a/y', 'b/z']
    v = spec.flatten({'b': [3.0], 'a': [1.0, 2.0]})
    np.testing.assert_array_equal(v, [1, 2, 3])
    np.testing.assert_array_equal(spec.get(v, 'b'), [3])
    assert ObsSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="field 'a' has 1 values, expected 2"):
        spec.flatten({'a': [1.0], 'b': [2.0]})
    with pytest.raises(KeyError, match="missing observation field 'b'"):
        spec.flatten({'a': [1.0, 2.0]})
    with pytest.raises(ValueError, match='duplicate field names'):
        ObsSpec([Field('a', ('x',)), Field('a', ('y',))])


def test_layout_mismatch_names_the_first_difference():
    trained = ObsSpec([Field('joint_position', ('hip', 'knee'))])
    deployed = ObsSpec([Field('joint_position', ('knee', 'hip'))])
    with pytest.raises(ValueError, match="index 0: expected 'joint_position/hip', got 'joint_position/knee'"):
        trained.check_matches(deployed)


def test_sample_age_closes_the_vector_and_must_be_given():
    from types import SimpleNamespace as NS
    builder = SensorObsBuilder(['hip', 'knee'], joint_velocity=False, imu=False, command=True, sample_age=True)
    assert builder.spec.names == ['joint_position', 'command', 'sample_age']
    assert SensorObsBuilder.from_spec(builder.spec).spec == builder.spec
    joints = NS(name=['knee', 'hip'], position=[2.0, 1.0], velocity=[], effort=[])
    obs = builder.build_from_messages(joints, command=[0.5, 0.0, 0.1], sample_age=0.008)
    np.testing.assert_allclose(obs, [1.0, 2.0, 0.5, 0.0, 0.1, 0.008])
    reading = builder.reading(obs)
    assert reading.sample_age == 0.008
    np.testing.assert_array_equal(builder.build(reading), obs)
    with pytest.raises(SensorMismatch, match="needs the sample age .sample_age: seconds since the joint sample's"):
        builder.build_from_messages(joints, command=[0.5, 0.0, 0.1])


def test_builder_maps_joints_by_name_not_order():
    builder = SensorObsBuilder(['hip', 'knee', 'ankle'], joint_velocity=True, imu=True)
    ordered = SensorReading({'hip': 1.0, 'knee': 2.0, 'ankle': 3.0}, {'hip': 4.0, 'knee': 5.0, 'ankle': 6.0},
                            np.array([7.0, 8.0, 9.0]), np.array([10.0, 11.0, 12.0]), np.array([0.0, 0.0, 0.0, 1.0]))
    shuffled = SensorReading({'ankle': 3.0, 'hip': 1.0, 'knee': 2.0}, {'knee': 5.0, 'ankle': 6.0, 'hip': 4.0},
                             ordered.angular_velocity, ordered.linear_acceleration, ordered.orientation)
    np.testing.assert_array_equal(builder.build(ordered), builder.build(shuffled))
    np.testing.assert_array_equal(builder.build(ordered)[:6], [1, 2, 3, 4, 5, 6])
    with pytest.raises(SensorMismatch, match="lacks joint 'knee'"):
        builder.build(SensorReading({'hip': 1.0, 'ankle': 3.0}, {'hip': 0.0, 'knee': 0.0, 'ankle': 0.0}))
    assert builder.missing_joints(['hip', 'ankle', 'wrist']) == ['knee']
    assert SensorObsBuilder.from_spec(builder.spec).spec == builder.spec


@pytest.mark.parametrize('task', ['cartpole', 'ant'])
def test_env_observation_round_trips_through_a_driver_reading(task):
    """What sim_node publishes (a reading) rebuilds the exact sensor_obs the environment produced."""
    env = DistillEnv(task)
    obs, _ = env.reset(seed=3)
    reading = env.sensor_builder.reading(obs[SENSOR])
    reordered = SensorReading(dict(reversed(list(reading.joint_position.items()))),
                              dict(reading.joint_velocity), reading.angular_velocity,
                              reading.linear_acceleration, reading.orientation)
    np.testing.assert_array_equal(env.sensor_builder.build(reordered), obs[SENSOR])


def test_build_from_messages_equals_build_of_reading():
    from types import SimpleNamespace as NS

    from distill_ros.observation import sensor_reading
    builder = SensorObsBuilder(['hip', 'knee'], joint_velocity=True, imu=True)
    imu = NS(orientation=NS(x=0.1, y=0.2, z=0.3, w=0.9), angular_velocity=NS(x=1, y=2, z=3),
             linear_acceleration=NS(x=4, y=5, z=6))
    ordered = NS(name=['hip', 'knee'], position=[1.0, 2.0], velocity=[3.0, 4.0])
    shuffled = NS(name=['knee', 'hip', 'wrist'], position=[2.0, 1.0, 9.0], velocity=[4.0, 3.0, 9.0])
    expected = builder.build(sensor_reading(ordered, imu))
    np.testing.assert_array_equal(builder.build_from_messages(ordered, imu), expected)
    np.testing.assert_array_equal(builder.build_from_messages(shuffled, imu), expected)
    with pytest.raises(SensorMismatch, match="lacks joint 'knee'"):
        builder.build_from_messages(NS(name=['hip'], position=[1.0], velocity=[0.0]), imu)
    with pytest.raises(SensorMismatch, match='carries no velocity'):
        builder.build_from_messages(NS(name=['hip', 'knee'], position=[1.0, 2.0], velocity=[]), imu)


@pytest.mark.parametrize('history, past_actions', [(1, False), (3, True), (4, False)])
def test_dataset_windows_equal_the_history_buffer(history, past_actions):
    """`history_steps` + `window_rows` over recorded episodes give, at every sample, the window
    `HistoryBuffer` returned at that tick (first step repeated, zero previous action at a start)."""
    rng = np.random.default_rng(0)
    lengths = [5, 2, 7]
    starts = np.cumsum([0] + lengths[:-1])
    n = sum(lengths)
    obs, action = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    steps = history_steps(obs, action if past_actions else None, starts)
    episode_start = np.repeat(starts, lengths)
    windows = steps[window_rows(np.arange(n), episode_start, history)]
    assert windows.shape == (n, history, 3 + (2 if past_actions else 0))
    for start, length in zip(starts, lengths):
        buffer = HistoryBuffer(history, 3, 2 if past_actions else 0)
        for t in range(start, start + length):
            np.testing.assert_allclose(windows[t], buffer.push(obs[t]), rtol=1e-6)
            buffer.set_action(action[t])
