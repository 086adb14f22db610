"""The simulated robots: reproducibility, an honest privileged/sensor split, randomization, sensor models."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from distill_ros.observation import (
    IMU_ANGULAR_VELOCITY,
    IMU_LINEAR_ACCELERATION,
    IMU_ORIENTATION,
    JOINT_POSITION,
    JOINT_VELOCITY,
    SAMPLE_AGE,
)
from distill_ros.paths import config_path
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv, TaskConfigError, load_task, task_names
from distill_ros.sim.task import parse_task

SENSOR_FIELDS = {JOINT_POSITION, JOINT_VELOCITY, IMU_ANGULAR_VELOCITY, IMU_LINEAR_ACCELERATION, IMU_ORIENTATION,
                 SAMPLE_AGE}   # the sample age: what the robot's stamps say, no privilege


def rollout(env: DistillEnv, seed: int, steps: int, action_seed: int = 0):
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(env.action_space.low, env.action_space.high))
        trace.append(obs)
        if terminated or truncated:
            break
    return info, trace


def test_builtin_tasks():
    assert {'cartpole', 'hopper', 'ant'} <= set(task_names())


@pytest.mark.parametrize('task', ['cartpole', 'hopper', 'ant'])
def test_same_seed_same_episode_bit_for_bit(task):
    a, b = DistillEnv(task), DistillEnv(task)
    info_a, trace_a = rollout(a, seed=11, steps=40)
    info_b, trace_b = rollout(b, seed=11, steps=40)
    assert info_a == info_b
    assert len(trace_a) == len(trace_b)
    for x, y in zip(trace_a, trace_b):
        assert x[SENSOR].tobytes() == y[SENSOR].tobytes()
        assert x[PRIVILEGED].tobytes() == y[PRIVILEGED].tobytes()
    # ...also when the same environment replays it after other episodes.
    rollout(a, seed=3, steps=10)
    _, again = rollout(a, seed=11, steps=40)
    assert all(x[SENSOR].tobytes() == y[SENSOR].tobytes() for x, y in zip(trace_a, again))
    info_c, trace_c = rollout(b, seed=12, steps=40)
    assert info_c['dynamics'] != info_a['dynamics']
    assert trace_c[0][SENSOR].tobytes() != trace_a[0][SENSOR].tobytes()


@pytest.mark.parametrize('task', ['cartpole', 'hopper', 'ant'])
def test_sensor_obs_carries_no_privileged_field(task):
    env = DistillEnv(task)
    assert set(env.sensor_spec.names) <= SENSOR_FIELDS
    assert 'qvel' in env.privileged_spec.names and 'dynamics' in env.privileged_spec.names
    if task != 'cartpole':
        assert 'contact_force' in env.privileged_spec.names
    # The cart-pole's encoders give positions only: velocity is the teacher's privilege.
    assert (JOINT_VELOCITY in env.sensor_spec.names) == (task != 'cartpole')


@pytest.mark.parametrize('task, hidden', [('cartpole', 'motor_strength'), ('hopper', 'motor_strength'),
                                          ('hopper', 'friction_scale'), ('ant', 'motor_strength')])
def test_hidden_parameter_is_invisible_to_sensors(task, hidden):
    """Two episodes that differ only in a hidden dynamics parameter give identical first sensor_obs,
    while the privileged observation shows the difference, and the difference is physically real.

    The parameters chosen act only through commanded torque or contact, which are zero at reset.
    Mass (or damping, with the Ant's initial velocity) changes the acceleration at once and so the
    accelerometer's first reading, exactly as it would on hardware: physics, not a leak.
    """
    env = DistillEnv(task)
    low_obs, low_info = env.reset(seed=5, options={'dynamics': {hidden: 0.8}})
    low_next = env.step(np.full(env.action_space.shape, 0.5))[0]
    high_obs, high_info = env.reset(seed=5, options={'dynamics': {hidden: 1.2}})
    high_next = env.step(np.full(env.action_space.shape, 0.5))[0]
    assert low_info['dynamics'][hidden] == 0.8 and high_info['dynamics'][hidden] == 1.2
    np.testing.assert_array_equal(low_obs[SENSOR], high_obs[SENSOR])
    dynamics = env.privileged_spec.slice('dynamics')
    assert not np.array_equal(low_obs[PRIVILEGED][dynamics], high_obs[PRIVILEGED][dynamics])
    if hidden != 'friction_scale':  # friction needs contact, which one step from reset may not have
        assert not np.array_equal(low_next[PRIVILEGED][:dynamics.start], high_next[PRIVILEGED][:dynamics.start])


def test_randomization_within_ranges_and_off_means_centre():
    task = load_task('hopper')
    env = DistillEnv(task)
    draws = {name: [] for name in task.randomization}
    for seed in range(40):
        _, info = env.reset(seed=seed)
        for name, value in info['dynamics'].items():
            draws[name].append(value)
    for name, dist in task.randomization.items():
        assert dist.a <= min(draws[name]) and max(draws[name]) <= dist.b
        assert np.std(draws[name]) > 0.05 * (dist.b - dist.a)
    nominal_mass = env._nominal['mass_scale'][0]
    _, info = env.reset(seed=0)
    np.testing.assert_allclose(env.model.body_mass, nominal_mass * info['dynamics']['mass_scale'])
    fixed = DistillEnv(task, randomize=False)
    _, info = fixed.reset(seed=9)
    assert info['dynamics'] == {name: dist.nominal for name, dist in task.randomization.items()}


def test_noiseless_sensors_read_the_true_state():
    env = DistillEnv('hopper', sensor_noise=False, latency=False, randomize=False)
    obs, _ = env.reset(seed=1)
    true = env.privileged_spec.unflatten(obs[PRIVILEGED])
    sensed = env.sensor_spec.unflatten(obs[SENSOR])
    joints = ['thigh_joint', 'leg_joint', 'foot_joint']
    qpos_names = list(env.privileged_spec.fields[0].elements)
    np.testing.assert_allclose(sensed[JOINT_POSITION], [true['qpos'][qpos_names.index(j)] for j in joints])
    np.testing.assert_allclose(np.linalg.norm(sensed[IMU_ORIENTATION]), 1.0)


def test_noise_bias_and_quantization():
    task = load_task('cartpole')
    noisy, clean = DistillEnv(task, latency=False), DistillEnv(task, sensor_noise=False, latency=False)
    _, noisy_trace = rollout(noisy, seed=4, steps=30)
    _, clean_trace = rollout(clean, seed=4, steps=30)
    n = min(len(noisy_trace), len(clean_trace))
    pos = noisy.sensor_spec.slice(JOINT_POSITION)
    noisy_pos = np.array([o[SENSOR][pos] for o in noisy_trace[:n]])
    error = noisy_pos - np.array([o[SENSOR][pos] for o in clean_trace[:n]])
    res = task.encoder.resolution
    np.testing.assert_allclose(noisy_pos / res, np.round(noisy_pos / res), atol=1e-6)
    assert np.all(np.abs(error) < 10 * (task.encoder.noise_std + task.encoder.bias_std) + res)
    assert np.any(error != 0)
    quat = noisy.sensor_spec.slice(IMU_ORIENTATION)
    np.testing.assert_allclose(np.linalg.norm(noisy_trace[5][SENSOR][quat]), 1.0)


def test_latency_delays_sensor_readings_by_whole_steps():
    data = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    data['sensors']['latency_steps'] = 2
    delayed_task = parse_task(data)
    delayed = DistillEnv(delayed_task, sensor_noise=False)
    prompt = DistillEnv(delayed_task, sensor_noise=False, latency=False)
    _, slow = rollout(delayed, seed=2, steps=12)
    _, fast = rollout(prompt, seed=2, steps=12)
    assert delayed.latency_steps == 2
    for t in range(2, min(len(slow), len(fast))):
        np.testing.assert_array_equal(slow[t][SENSOR], fast[t - 2][SENSOR])
        np.testing.assert_array_equal(slow[t][PRIVILEGED], fast[t][PRIVILEGED])  # the truth is not delayed
    np.testing.assert_array_equal(slow[1][SENSOR], fast[0][SENSOR])


def test_sample_age_is_the_drawn_latency_in_seconds_and_the_rest_is_unchanged():
    """sensors.sample_age: the sensor vector gains a last field, the age of the reading in seconds
    (latency_steps x the policy step), never delayed itself; everything before it is as without."""
    data = yaml.safe_load(config_path('tasks', 'hopper.yaml').read_text())
    data['sensors']['sample_age'] = False
    plain = DistillEnv(parse_task(data))
    data['sensors']['sample_age'] = True
    env = DistillEnv(parse_task(data))
    assert env.sensor_spec.names == plain.sensor_spec.names + [SAMPLE_AGE]
    assert env.privileged_spec == plain.privileged_spec   # the teacher's input is unchanged
    ages = set()
    for seed in range(6):
        info, trace = rollout(env, seed=seed, steps=15)
        _, reference = rollout(plain, seed=seed, steps=15)
        age = info['latency_steps'] * env.dt
        ages.add(age)
        for obs, ref in zip(trace, reference):
            np.testing.assert_array_equal(obs[SENSOR][:-1], ref[SENSOR])
            assert obs[SENSOR][-1] == age
    assert ages == {0.0, env.dt}   # hopper draws latency 0 or 1 step
    data['sensors']['sample_age'] = 'yes'
    with pytest.raises(TaskConfigError, match="'sample_age' must be bool"):
        parse_task(data, 'edited.yaml')


def test_task_adds_sensor_fields_to_the_teacher_input():
    """privileged.sensor_fields: the teacher also sees those sensor fields, exactly as the sensors
    read them this step (noise and latency included), after the simulator-only fields."""
    data = yaml.safe_load(config_path('tasks', 'hopper.yaml').read_text())
    data['privileged']['sensor_fields'] = [IMU_LINEAR_ACCELERATION, JOINT_POSITION]
    env, plain = DistillEnv(parse_task(data)), DistillEnv('hopper')
    names = [f.name for f in env.privileged_spec.fields]
    assert names == [f.name for f in plain.privileged_spec.fields] + [IMU_LINEAR_ACCELERATION, JOINT_POSITION]
    sensor_fields = {f.name: f for f in env.sensor_spec.fields}
    assert env.privileged_spec.element_names()[-6:] == (sensor_fields[IMU_LINEAR_ACCELERATION].element_names()
                                                        + sensor_fields[JOINT_POSITION].element_names())
    _, trace = rollout(env, seed=4, steps=20)
    _, reference = rollout(plain, seed=4, steps=20)
    for obs, ref in zip(trace, reference):
        sensor = obs[SENSOR]
        np.testing.assert_array_equal(obs[PRIVILEGED][:plain.privileged_spec.size], ref[PRIVILEGED])
        np.testing.assert_array_equal(obs[PRIVILEGED][env.privileged_spec.slice(IMU_LINEAR_ACCELERATION)],
                                      sensor[env.sensor_spec.slice(IMU_LINEAR_ACCELERATION)])
        np.testing.assert_array_equal(obs[PRIVILEGED][env.privileged_spec.slice(JOINT_POSITION)],
                                      sensor[env.sensor_spec.slice(JOINT_POSITION)])


def test_episode_truncates_at_max_steps():
    data = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    data['env']['max_episode_steps'] = 5
    env = DistillEnv(parse_task(data), randomize=False)
    env.reset(seed=0)
    results = [env.step(np.zeros(1)) for _ in range(5)]
    assert [r[3] for r in results] == [False] * 4 + [True]


def test_actions_are_checked():
    env = DistillEnv('hopper')
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r'action has shape \(2,\), expected \(3,\)'):
        env.step(np.zeros(2))
    with pytest.raises(ValueError, match='NaN or Inf'):
        env.step(np.array([0.0, np.nan, 0.0]))


@pytest.mark.parametrize('edit, message', [
    (lambda d: d['randomization'].update(gravity={'low': 0.9, 'high': 1.1}),
     "unknown randomization parameter 'gravity'"),
    (lambda d: d['randomization'].update(mass_scale={'low': 2.0, 'high': 1.0}), 'low (2.0) must not exceed high (1.0)'),
    (lambda d: d['sensors'].update(joints=['slider', 'elbow']),
     "sensors.joints entry 'elbow' is not a joint of the model"),
    (lambda d: d['sensors'].update(latency_steps=[2, 1]), 'latency_steps'),
    (lambda d: d['sensors']['encoder'].update(noise_std=-1.0), 'noise_std must be >= 0'),
    (lambda d: d['imu'].update(body='wheel'), "imu.body 'wheel' is not a body of the model"),
    (lambda d: d['env'].pop('max_episode_steps'), "missing key 'max_episode_steps'"),
    (lambda d: d.setdefault('privileged', {}).update(sensor_fields=['lidar']),
     "privileged.sensor_fields names .'lidar'.; this task's sensor fields are .'joint_position'"),
])
def test_bad_task_files_are_refused_with_the_key(edit, message):
    data = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    data = copy.deepcopy(data)
    edit(data)
    with pytest.raises(TaskConfigError, match=message.replace('(', r'\(').replace(')', r'\)')):
        DistillEnv(parse_task(data, 'edited.yaml'))


def test_unknown_task_name():
    with pytest.raises(TaskConfigError, match="unknown task 'walker'.*cartpole"):
        load_task('walker')
