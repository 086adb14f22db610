"""distill_ros.control without ROS: the ring, the deadline loop, safety, the watchdog, the e-stop,
inference backends, and the controller's tick against the training-time observation path."""
from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from distill_ros.control.controller import POLICY, REPEAT, SAFE, StudentController, command_order
from distill_ros.control.inference import BACKENDS, BackendError, NumpyMLPBackend, TorchBackend, load_backend, verify
from distill_ros.control.safety import EStop, SafetyFilter, Watchdog
from distill_ros.control.timing import LoopStats, RealtimeLoop, Ring, request_fifo
from distill_ros.observation import COMMAND, SAMPLE_AGE, SensorObsBuilder
from distill_ros.paths import config_path
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.students import make_student
from distill_ros.sim import SENSOR, DistillEnv
from distill_ros.sim.task import parse_task
from distill_ros.velocity_command import VelocityCommand

MS = 1_000_000  # ns


# ---------------------------------------------------------------------- timing
def test_ring_keeps_the_last_samples():
    ring = Ring(4)
    assert np.isnan(ring.percentile(50))
    for v in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]:
        ring.add(v)
    assert sorted(ring.values()) == [3.0, 4.0, 5.0, 6.0] and ring.count == 6
    assert ring.max() == 6.0 and ring.percentile(50) == pytest.approx(4.5)
    ring.clear()
    assert ring.values().size == 0


def test_loop_stats_count_misses_and_period_error():
    stats = LoopStats(window=8, miss_tolerance_s=0.001)
    stats.record_tick(0.0002, None)
    stats.record_tick(0.0015, 0.0013)
    stats.record_tick(0.0001, -0.0014)
    assert stats.ticks == 3 and stats.deadline_misses == 1
    assert stats.max_lateness == pytest.approx(0.0015) and stats.max_period_error == pytest.approx(0.0014)
    assert stats.jitter_p99() == pytest.approx(np.percentile([0.0013, 0.0014], 99))


def test_loop_keeps_absolute_deadlines_and_skips_missed_ones():
    period_s = 0.005
    deadlines: list[int] = []
    starts: list[int] = []
    done = threading.Event()

    def tick(deadline_ns: int, start_ns: int) -> None:
        deadlines.append(deadline_ns)
        starts.append(start_ns)
        if len(deadlines) == 5:
            threading.Event().wait(3.5 * period_s)  # one overrun of 3.5 periods
        if len(deadlines) >= 20:
            done.set()

    stats = LoopStats()
    loop = RealtimeLoop(period_s, tick, stats, busy_wait_s=0.0005)
    loop.start()
    assert done.wait(30)
    loop.stop()
    period_ns = round(period_s * 1e9)
    steps = np.diff(deadlines)
    # Every deadline lies on the grid start + k * period (no drift), and no tick starts early.
    assert np.all(steps % period_ns == 0) and np.all(steps >= period_ns)
    assert all(s >= d for s, d in zip(starts, deadlines))
    # The overrun dropped the deadlines it covered instead of running them back to back.
    assert stats.skipped >= 2 and steps[4] >= 3 * period_ns
    assert stats.ticks >= 20


def test_fifo_request_reports_what_happened():
    result: list[tuple[bool, str]] = []

    def ask():
        result.append(request_fifo(10))
        if result[0][0]:  # leave no real-time thread behind
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    t = threading.Thread(target=ask)
    t.start()
    t.join()
    granted, message = result[0]
    assert ('granted' in message) if granted else ('refused' in message or 'not available' in message)


# ---------------------------------------------------------------------- safety
def test_safety_clips_rate_limits_and_refuses_non_finite():
    safety = SafetyFilter(low=[-1.0, -2.0], high=[1.0, 2.0], max_rate=[10.0, np.inf], safe_action='zero')
    cmd, ok = safety(np.array([5.0, -5.0]), dt=0.01)
    assert ok and cmd.tolist() == [0.1, -2.0]  # joint 0: at most 10/s * 0.01 s from zero; joint 1: clipped
    cmd, ok = safety(np.array([5.0, 1.5]), dt=0.01)
    assert cmd.tolist() == pytest.approx([0.2, 1.5]) and safety.limited == 2
    for bad in ([np.nan, 0.0], [0.0, np.inf], [1.0]):
        cmd, ok = safety(np.array(bad), dt=0.01)
        assert not ok and cmd.tolist() == [0.0, 0.0]
    assert safety.rejected == 3


def test_safe_action_hold_keeps_the_last_command():
    safety = SafetyFilter(low=[-3.0], high=[3.0], safe_action='hold')
    assert safety.safe().tolist() == [0.0]  # nothing sent yet
    safety(np.array([1.25]), dt=0.04)
    assert safety.safe().tolist() == [1.25]
    cmd, ok = safety(np.array([np.nan]), dt=0.04)
    assert not ok and cmd.tolist() == [1.25]
    with pytest.raises(ValueError, match='safe_action'):
        SafetyFilter([-1.0], [1.0], safe_action='brake')


def test_watchdog_trips_and_recovers_or_latches():
    dog = Watchdog(timeout_s=0.1)
    assert dog.check(0, None) == 'waiting'
    assert dog.check(50 * MS, 0) == 'ok'
    assert dog.check(100 * MS, 0) == 'ok'           # exactly the timeout old
    assert dog.check(101 * MS, 0) == 'stale' and dog.trips == 1
    assert dog.check(130 * MS, 0) == 'stale' and dog.trips == 1
    assert dog.check(140 * MS, 135 * MS) == 'ok'    # fresh data: resumes on its own
    latched = Watchdog(timeout_s=0.1, latch=True)
    latched.check(0, 0)
    assert latched.check(200 * MS, 0) == 'stale'
    assert latched.check(210 * MS, 205 * MS) == 'latched'
    latched.reset()
    assert latched.check(220 * MS, 215 * MS) == 'ok'


def test_estop_latches_until_reset():
    estop = EStop()
    estop.trip()
    estop.trip()
    assert estop.latched and estop.trips == 1
    estop.reset()
    assert not estop.latched


def test_command_order_maps_by_name_and_names_what_is_wrong():
    assert command_order(['a', 'b', 'c'], None).tolist() == [0, 1, 2]
    assert command_order(['a', 'b', 'c'], ['c', 'a', 'b']).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match=r"unknown joints \['elbow'\].*missing joints \['c'\]"):
        command_order(['a', 'b', 'c'], ['a', 'b', 'elbow'])
    with pytest.raises(ValueError, match='duplicate'):
        command_order(['a', 'b'], ['a', 'b', 'a'])


# ---------------------------------------------------------------------- inference
def random_student(tmp_path, kind: str = 'mlp', seed: int = 0, **sizes) -> ckpt_io.Checkpoint:
    """A random-weight cartpole student (sensor history with past actions), saved and loaded back."""
    env = DistillEnv('cartpole')
    torch.manual_seed(seed)
    obs_dim, action_dim = env.sensor_spec.size, len(env.action_names)
    model = make_student(kind, obs_dim + action_dim, action_dim, 4, **sizes)
    with torch.no_grad():
        model.obs_var.uniform_(0.5, 2.0)
        model.obs_mean.normal_(0.0, 0.1)
    ckpt = ckpt_io.Checkpoint(model=model, obs_source='sensor', obs_spec=env.sensor_spec,
                              action_names=list(env.action_names), action_low=np.array([-3.0]),
                              action_high=np.array([3.0]), task='cartpole', role='student', past_actions=True)
    folder = ckpt_io.save(ckpt, tmp_path / f'{kind}_{seed}')
    env.close()
    return ckpt_io.load(folder)


@pytest.mark.parametrize('backend', BACKENDS)
def test_backends_reproduce_the_torch_student(tmp_path, backend):
    ckpt = random_student(tmp_path)
    b = load_backend(ckpt, backend)
    assert verify(b, ckpt, trials=8) <= 1e-4
    window = np.random.default_rng(0).normal(size=(4, ckpt.model.step_dim)).astype(np.float32)
    with torch.no_grad():
        expected = ckpt.model(torch.from_numpy(window)[None])[0].numpy()
    np.testing.assert_allclose(b(window), expected, atol=1e-4)


def test_numpy_backend_refuses_what_it_cannot_run(tmp_path):
    ckpt = random_student(tmp_path, 'gru-window', hidden_size=16)
    with pytest.raises(BackendError, match='MLP policies only.*GRUPolicy'):
        load_backend(ckpt, 'numpy')
    assert load_backend(ckpt, 'onnxruntime')(np.zeros((4, ckpt.model.step_dim), np.float32)).shape == (1,)
    with pytest.raises(BackendError, match='unknown inference backend'):
        load_backend(ckpt, 'tensorrt')
    assert load_backend(ckpt, 'auto').name == 'onnxruntime'  # auto: numpy only for MLPs
    assert load_backend(random_student(tmp_path, 'mlp'), 'auto').name == 'numpy'


@pytest.mark.parametrize('cell', ['gru', 'lstm'])
def test_recurrent_export_and_backends_carry_the_state_over_an_episode(tmp_path, cell):
    """The exported ONNX (state in, state out) and every backend of a recurrent student give the
    torch student's actions step by step over a whole episode, the state fed back; reset() starts
    an episode afresh."""
    import onnxruntime as ort

    from distill_ros.policies.actor import Actor
    from distill_ros.policies.export import STATE_IN, STATE_OUT, export_onnx
    ckpt = random_student(tmp_path, cell, hidden_size=16, hidden=[8])
    assert export_onnx(ckpt, tmp_path / 's.onnx') <= 1e-5
    session = ort.InferenceSession(str(tmp_path / 's.onnx'), providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == ['obs', STATE_IN]
    assert [o.name for o in session.get_outputs()] == ['action_mean', STATE_OUT]
    sequence = sensor_sequence(steps=150)
    actor, buffer = Actor(ckpt), ckpt.history_buffer()
    backends = {name: load_backend(ckpt, name) for name in ('onnxruntime', 'torch', 'torchscript')}
    assert load_backend(ckpt, 'auto').name == 'onnxruntime'
    state = np.zeros((1, 1, ckpt.model.state_size), np.float32)
    rng = np.random.default_rng(0)
    for t, obs in enumerate(sequence):
        expected = actor.act(obs[None])[0]
        step = buffer.push(obs)               # (1, step_dim): the observation and the previous action
        mean, state = session.run(None, {'obs': step, STATE_IN: state})
        np.testing.assert_allclose(mean[0], expected, atol=1e-5, err_msg=f'onnx step {t}')
        for name, backend in backends.items():
            np.testing.assert_allclose(backend(step), expected, atol=1e-4, err_msg=f'{name} step {t}')
        action = rng.uniform(-1, 1, size=1)
        actor.executed([0], action[None])
        buffer.set_action(action)
    first = buffer.push(sequence[0]) if buffer.reset() is None else None
    fresh = Actor(ckpt).act(sequence[0][None])[0]
    for name, backend in backends.items():
        assert not np.allclose(backend(first), fresh, atol=1e-6), name   # still carries the episode
        backend.reset()
        np.testing.assert_allclose(backend(first), fresh, atol=1e-4, err_msg=name)


# ---------------------------------------------------------------------- the controller's tick
def joint_msg(names, values, stamp=0):
    return SimpleNamespace(name=list(names), position=list(values), velocity=[], header=SimpleNamespace(stamp=stamp))


def imu_msg(values):
    g, a, o = values[0:3], values[3:6], values[6:10]
    vec = SimpleNamespace
    return SimpleNamespace(angular_velocity=vec(x=g[0], y=g[1], z=g[2]),
                           linear_acceleration=vec(x=a[0], y=a[1], z=a[2]),
                           orientation=vec(x=o[0], y=o[1], z=o[2], w=o[3]))


def sensor_sequence(steps: int = 12, seed: int = 3) -> list[np.ndarray]:
    env = DistillEnv('cartpole')
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [obs[SENSOR].copy()]
    for _ in range(steps - 1):
        obs, *_ = env.step(rng.uniform(-1, 1, size=1))
        out.append(obs[SENSOR].copy())
    env.close()
    return out


def make_controller(ckpt, timeout_s=0.1, safe_action='zero', latch=False, max_rate=np.inf):
    return StudentController(ckpt, load_backend(ckpt, 'numpy'),
                             SafetyFilter(ckpt.action_low, ckpt.action_high, max_rate, safe_action),
                             Watchdog(timeout_s, latch), LoopStats(), period_s=0.04)


def feed(controller, obs, now_ns, shuffled=False, stamp=0):
    joints, rest = obs[:2], obs[2:]
    if shuffled:  # another order, and a joint the policy does not read
        controller.sensors(joint_msg(['wheel', 'hinge', 'slider'], [9.0, joints[1], joints[0]], stamp), imu_msg(rest),
                           now_ns)
    else:
        controller.sensors(joint_msg(['slider', 'hinge'], joints, stamp), imu_msg(rest), now_ns)


def test_controller_commands_what_training_computes(tmp_path):
    """Same builder, same history buffer, same clipping as training and evaluation."""
    ckpt = random_student(tmp_path)
    ctl = make_controller(ckpt)
    sequence = sensor_sequence()
    builder = SensorObsBuilder.from_spec(ckpt.obs_spec)
    reference = ckpt.history_buffer()
    now = ctl.activated_ns
    for k, obs in enumerate(sequence):
        now += 40 * MS
        feed(ctl, obs, now, shuffled=k % 2 == 1, stamp=k)
        tick = ctl.tick(now)
        window = reference.push(builder.build(builder.reading(obs)))
        expected = ckpt.act(window)
        reference.set_action(expected)
        assert tick.source == POLICY and tick.sample_header.stamp == k
        np.testing.assert_allclose(tick.command, expected, atol=1e-4)
        # No new sample before the next tick: the same command again, without a policy call.
        again = ctl.tick(now + 1 * MS)
        assert again.source == REPEAT and again.command.tolist() == tick.command.tolist()
    assert ctl.stats.inference.count == len(sequence)


def test_controller_safe_action_on_dropout_nan_missing_joint_and_estop(tmp_path):
    ckpt = random_student(tmp_path, seed=1)
    ctl = make_controller(ckpt, timeout_s=0.1)
    sequence = sensor_sequence()
    now = ctl.activated_ns
    assert ctl.tick(now).reason == 'waiting'
    # No sample at all within the timeout after activation: stale.
    assert ctl.tick(now + 101 * MS).reason == 'stale' and ctl.watchdog.trips == 1
    now += 120 * MS
    feed(ctl, sequence[0], now)
    assert ctl.tick(now).source == POLICY
    # Dropout: the last command is repeated while the sample is within the timeout, then safe.
    assert ctl.tick(now + 100 * MS).source == REPEAT
    stale = ctl.tick(now + 101 * MS)
    assert stale.source == SAFE and stale.reason == 'stale' and stale.command.tolist() == [0.0]
    # Fresh data resumes (no latch) with the history restarted.
    now += 200 * MS
    feed(ctl, sequence[1], now)
    assert ctl.tick(now).source == POLICY
    # A NaN sample is dropped and never reaches the command; it does not refresh the watchdog.
    bad = sequence[2].copy()
    bad[1] = np.nan
    feed(ctl, bad, now + 40 * MS)
    tick = ctl.tick(now + 40 * MS)
    assert tick.source == REPEAT and np.all(np.isfinite(tick.command)) and ctl.bad_samples == 1
    assert 'NaN' in ctl.last_error
    assert ctl.tick(now + 101 * MS).reason == 'stale'
    # A message lacking a joint is dropped with the joint's name.
    ctl.sensors(joint_msg(['slider'], [0.0]), imu_msg(sequence[3][2:]), now + 150 * MS)
    assert ctl.tick(now + 150 * MS).source == SAFE and "'hinge'" in ctl.last_error
    # E-stop latches over fresh data until reset.
    feed(ctl, sequence[4], now + 160 * MS)
    assert ctl.tick(now + 160 * MS).source == POLICY
    ctl.estop.trip()
    for k in range(3):
        feed(ctl, sequence[5 + k], now + (200 + 40 * k) * MS)
        tick = ctl.tick(now + (200 + 40 * k) * MS)
        assert tick.source == SAFE and tick.reason == 'estop' and tick.command.tolist() == [0.0]
    ctl.estop.reset()
    feed(ctl, sequence[8], now + 330 * MS)
    assert ctl.tick(now + 330 * MS).source == POLICY


def test_controller_latched_watchdog_needs_reactivation(tmp_path):
    ckpt = random_student(tmp_path, seed=2)
    ctl = make_controller(ckpt, latch=True, safe_action='hold')
    sequence = sensor_sequence()
    now = ctl.activated_ns + 10 * MS
    feed(ctl, sequence[0], now)
    first = ctl.tick(now)
    assert ctl.tick(now + 150 * MS).reason == 'stale'
    feed(ctl, sequence[1], now + 160 * MS)
    held = ctl.tick(now + 160 * MS)
    assert held.reason == 'latched' and held.command.tolist() == first.command.tolist()  # hold
    ctl.activate(now + 200 * MS)
    feed(ctl, sequence[2], now + 210 * MS)
    assert ctl.tick(now + 210 * MS).source == POLICY


def test_controller_replaces_non_finite_policy_output(tmp_path):
    ckpt = random_student(tmp_path, seed=4)
    with torch.no_grad():
        ckpt.model.head.bias.fill_(float('nan'))
    ctl = StudentController(ckpt, TorchBackend(ckpt), SafetyFilter([-3.0], [3.0]),
                            Watchdog(0.1), LoopStats(), period_s=0.04)
    now = ctl.activated_ns
    feed(ctl, sensor_sequence(1)[0], now)
    tick = ctl.tick(now)
    assert tick.source == SAFE and tick.reason == 'nonfinite' and tick.command.tolist() == [0.0]
    with pytest.raises(BackendError, match='differ'):
        verify(NumpyMLPBackend(ckpt), random_student(tmp_path, seed=5))


# ---------------------------------------------------------------------- the velocity command (cmd_vel)
def test_velocity_command_times_out_to_zero():
    cmd = VelocityCommand(0.5)
    assert cmd.value(0).tolist() == [0.0, 0.0, 0.0] and cmd.timed_out(0) and cmd.age_s(0) is None
    cmd.set((0.8, -0.3, 0.5), 1000 * MS)
    assert cmd.value(1000 * MS).tolist() == [0.8, -0.3, 0.5]
    assert cmd.value(1500 * MS).tolist() == [0.8, -0.3, 0.5] and cmd.age_s(1500 * MS) == pytest.approx(0.5)
    assert cmd.value(1500 * MS + 1).tolist() == [0.0, 0.0, 0.0] and cmd.timed_out(1500 * MS + 1)
    # A bad command is refused and the last good one kept; a new one counts from its own arrival.
    with pytest.raises(ValueError, match='NaN or Inf'):
        cmd.set((float('nan'), 0.0, 0.0), 1600 * MS)
    with pytest.raises(ValueError, match=r"2 values; expected 3 \['vx', 'vy', 'yaw_rate'\]"):
        cmd.set((1.0, 0.0), 1600 * MS)
    assert cmd.value(1600 * MS).tolist() == [0.0, 0.0, 0.0]
    cmd.set([0.2, 0.0, -1.0], 2000 * MS)
    assert cmd.value(2400 * MS).tolist() == [0.2, 0.0, -1.0] and not cmd.timed_out(2400 * MS)
    cmd.clear()
    assert cmd.value(2400 * MS).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match='timeout'):
        VelocityCommand(0.0)


def quadruped_student(tmp_path, seed: int = 0) -> ckpt_io.Checkpoint:
    """A random-weight quadruped student (its sensor observation ends with the command), saved and loaded."""
    env = DistillEnv('quadruped')
    torch.manual_seed(seed)
    n = len(env.action_names)
    model = make_student('mlp', env.sensor_spec.size, n, 2, hidden=[32])
    ckpt = ckpt_io.Checkpoint(model=model, obs_source='sensor', obs_spec=env.sensor_spec, action_names=env.action_names,
                              action_low=env.action_space.low.astype(np.float64),
                              action_high=env.action_space.high.astype(np.float64), task='quadruped', role='student')
    folder = ckpt_io.save(ckpt, tmp_path / f'quadruped_{seed}')
    env.close()
    return ckpt_io.load(folder)


def quadruped_messages(builder: SensorObsBuilder, obs: np.ndarray, stamp: int = 0):
    """A driver's JointState and Imu (as duck-typed objects) for a quadruped sensor observation."""
    reading = builder.reading(obs)
    joints = SimpleNamespace(name=list(builder.joints), position=[reading.joint_position[j] for j in builder.joints],
                             velocity=[reading.joint_velocity[j] for j in builder.joints],
                             header=SimpleNamespace(stamp=stamp))
    imu = imu_msg([*reading.angular_velocity, *reading.linear_acceleration, *reading.orientation])
    return joints, imu


def test_controller_puts_the_velocity_command_into_the_observation_until_its_timeout(tmp_path):
    """A student that follows a velocity command reads it from set_velocity_command (the node's
    cmd_vel), exactly as the observation's last field, and zero velocity once it is older than
    the timeout; its commands are the training-time path's on the same observation."""
    ckpt = quadruped_student(tmp_path)
    ctl = StudentController(ckpt, load_backend(ckpt, 'numpy'), SafetyFilter(ckpt.action_low, ckpt.action_high),
                            Watchdog(5.0), LoopStats(), period_s=0.02, command_timeout_s=0.3)
    assert ctl.velocity_command is not None and ctl.topics['command'] == 'cmd_vel'
    env = DistillEnv('quadruped')
    obs, _ = env.reset(seed=3)
    env.close()
    builder = SensorObsBuilder.from_spec(ckpt.obs_spec)
    command = builder.spec.slice(COMMAND)
    reference = ckpt.history_buffer()
    now, given = ctl.activated_ns, np.array([0.8, -0.3, 0.5])

    def step(k: int, expected_command) -> None:
        ctl.sensors(*quadruped_messages(builder, obs[SENSOR], k), now)
        tick = ctl.tick(now)
        assert tick.source == POLICY
        np.testing.assert_array_equal(ctl.obs[command], expected_command)
        np.testing.assert_array_equal(ctl.observed_command, expected_command)
        expected_obs = obs[SENSOR].copy()
        expected_obs[command] = expected_command
        expected = ckpt.act(reference.push(expected_obs))
        np.testing.assert_allclose(tick.command, expected, atol=1e-4)

    step(0, [0.0, 0.0, 0.0])                     # no command yet: zero velocity
    ctl.set_velocity_command(given, now)
    for k in range(1, 16):                        # 0.3 s at 50 Hz: the command holds
        now += 20 * MS
        step(k, given)
    now += 20 * MS + 1                            # now older than 0.3 s: zero velocity
    step(16, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match='NaN'):
        ctl.set_velocity_command((0.0, float('inf'), 0.0), now)
    # A student without a command field ignores it (and its node does not subscribe to cmd_vel).
    assert make_controller(random_student(tmp_path)).velocity_command is None


def test_controller_reads_the_sample_age_from_its_clock_and_refuses_a_clock_mismatch(tmp_path):
    """A student that reads the sample age gets now (its clock_ns: the node's ROS clock) minus the
    joint_states stamp, in seconds; a small negative age (clock skew) counts as 0, and an age that
    says the stamps are not in the clock's time (sim time against wall time) refuses the sample with
    the reason, as any bad sample."""
    data = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    data['sensors']['sample_age'] = True
    env = DistillEnv(parse_task(data))
    obs, _ = env.reset(seed=21)
    env.close()
    assert env.sensor_spec.names[-1] == SAMPLE_AGE
    torch.manual_seed(0)
    model = make_student('mlp', env.sensor_spec.size, 1, 2, hidden=[16])
    folder = ckpt_io.save(ckpt_io.Checkpoint(model=model, obs_source='sensor', obs_spec=env.sensor_spec,
                                             action_names=list(env.action_names), action_low=np.array([-3.0]),
                                             action_high=np.array([3.0]), task='cartpole', role='student'),
                          tmp_path / 'age')
    ckpt = ckpt_io.load(folder)
    clock = [0]
    ctl = StudentController(ckpt, load_backend(ckpt, 'numpy'), SafetyFilter(ckpt.action_low, ckpt.action_high),
                            Watchdog(5.0), LoopStats(), period_s=0.04, clock_ns=lambda: clock[0])
    sensor, now, reference = obs[SENSOR], ctl.activated_ns, ckpt.history_buffer()
    stamp = SimpleNamespace(sec=100, nanosec=500_000_000)
    for age_ns, expected in ((12 * MS, 0.012), (-1 * MS, 0.0), (0, 0.0)):
        clock[0] = 100_500_000_000 + age_ns
        ctl.sensors(joint_msg(['slider', 'hinge'], sensor[:2], stamp), imu_msg(sensor[2:12]), now)
        tick = ctl.tick(now)
        assert tick.source == POLICY and ctl.obs[-1] == expected
        expected_obs = sensor.copy()
        expected_obs[-1] = expected
        np.testing.assert_allclose(tick.command, ckpt.act(reference.push(expected_obs)), atol=1e-5)
    clock[0] = 1_800_000_000_000_000_000   # wall time against a sim-time stamp
    ctl.sensors(joint_msg(['slider', 'hinge'], sensor[:2], stamp), imu_msg(sensor[2:12]), now)
    assert ctl.tick(now).source != POLICY and ctl.bad_samples == 1
    assert "sample_age: the sample stamped 100.500000000 s is" in ctl.last_error
    assert 'use_sim_time' in ctl.last_error


def test_fifo_for_the_other_threads_of_a_process():
    """In a child process (so pytest keeps its scheduler): every normal thread but the skipped one
    goes to SCHED_FIFO, and back."""
    import subprocess
    import sys
    code = '''
import os, threading
from distill_ros.control.timing import fifo_other_threads, request_fifo, restore_normal_scheduling
stop = threading.Event()
t = threading.Thread(target=stop.wait)
t.start()
granted, _ = request_fifo(10)
restore_normal_scheduling()
changed, message = fifo_other_threads(5, skip={threading.get_native_id()})
policies = {tid: os.sched_getscheduler(tid) for tid in map(int, os.listdir('/proc/self/task'))}
me = threading.get_native_id()
assert policies[me] == os.SCHED_OTHER, policies
if granted:
    assert t.native_id in changed and policies[t.native_id] == os.SCHED_FIFO, (changed, policies)
    assert restore_normal_scheduling(changed) and os.sched_getscheduler(t.native_id) == os.SCHED_OTHER
else:
    assert changed == [], changed
stop.set()
t.join()
print('ok', granted, message)
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith('ok'), out.stdout + out.stderr
