"""Sensor messages the project did not write: a malformed message (arrays that do not match
`name[]`, duplicate names, NaN, truncated CDR) is a bad sample with a clear cause in every role,
never a wrong observation value and never an unexpected exception."""
from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill_ros.data import cdr
from distill_ros.data.assembler import EpisodeAssembler
from distill_ros.data.bag import BagError, bag_to_dataset, deserialize, typestore
from distill_ros.data.dataset import DatasetSpec
from distill_ros.observation import MalformedMessage, SensorMessageError, SensorObsBuilder, sensor_reading

JOINTS = ('hip', 'knee')


def imu_ns(values=(0.1, 0.2, 0.3, 0.9, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)):
    o, g, a = values[0:4], values[4:7], values[7:10]
    return NS(orientation=NS(x=o[0], y=o[1], z=o[2], w=o[3]), angular_velocity=NS(x=g[0], y=g[1], z=g[2]),
              linear_acceleration=NS(x=a[0], y=a[1], z=a[2]), orientation_covariance=[0.0] * 9,
              angular_velocity_covariance=[0.0] * 9, linear_acceleration_covariance=[0.0] * 9)


@pytest.mark.parametrize('name, position, velocity, effort, cause', [
    # One position for two names: numpy used to broadcast it into every joint.
    (['hip', 'knee'], [1.0], [3.0, 4.0], [], 'malformed JointState: 2 names but position 1 values'),
    # Names in another order and a short array: used to raise IndexError on every tick.
    (['knee', 'hip'], [1.0], [3.0, 4.0], [], 'malformed JointState: 2 names but position 1 values'),
    (['hip', 'knee'], [1.0, 2.0, 7.0], [3.0, 4.0], [], 'position 3 values'),
    (['hip', 'knee'], [1.0, 2.0], [3.0], [], 'velocity 1 values'),
    (['hip', 'knee'], [1.0, 2.0], [3.0, 4.0], [0.5], 'effort 1 values'),
    (['hip', 'hip', 'knee'], [1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [], "duplicate names ['hip']"),
    (['hip', 'knee'], [1.0, float('nan')], [3.0, 4.0], [], 'NaN or Inf'),
    (['hip', 'knee'], [1.0, 2.0], [3.0, float('inf')], [], 'NaN or Inf'),
])
def test_malformed_joint_state_is_refused_by_every_entry_of_the_builder(name, position, velocity, effort, cause):
    builder = SensorObsBuilder(JOINTS, joint_velocity=True, imu=True)
    msg = NS(name=name, position=position, velocity=velocity, effort=effort)
    with pytest.raises(MalformedMessage, match=cause.replace('[', r'\[').replace(']', r'\]')):
        builder.build_from_messages(msg, imu_ns())
    with pytest.raises(MalformedMessage):
        builder.check_message(joints=msg)
    if 'NaN' not in cause:
        with pytest.raises(MalformedMessage):
            sensor_reading(msg)


def test_malformed_imu_is_refused():
    builder = SensorObsBuilder(JOINTS, joint_velocity=False, imu=True)
    joints = NS(name=['hip', 'knee'], position=[1.0, 2.0], velocity=[], effort=[])
    with pytest.raises(MalformedMessage, match='NaN or Inf') as info:
        builder.build_from_messages(joints, imu_ns((0, 0, 0, 1, float('nan'), 0, 0, 0, 0, 9.8)))
    assert info.value.stream == 'imu'
    bad = imu_ns()
    bad.angular_velocity_covariance = [0.0] * 4
    with pytest.raises(MalformedMessage, match='angular_velocity_covariance has 4 values; expected 9'):
        builder.check_message(imu=bad)
    np.testing.assert_array_equal(builder.build_from_messages(joints, imu_ns()),
                                  [1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.1, 0.2, 0.3, 0.9])


# ---------------------------------------------------------------- property-based
def oracle(spec_joints, velocity_needed: bool, msg) -> np.ndarray | None:
    """The observation a message means, from sensor_msgs' own rules; None when it means none."""
    n = len(msg.name)
    if len(msg.position) != n or len(msg.velocity) not in (0, n) or len(msg.effort) not in (0, n):
        return None
    if len(set(msg.name)) != n or any(j not in msg.name for j in spec_joints):
        return None
    if velocity_needed and len(msg.velocity) != n:
        return None
    pos = [msg.position[list(msg.name).index(j)] for j in spec_joints]
    vel = [msg.velocity[list(msg.name).index(j)] for j in spec_joints] if velocity_needed else []
    obs = np.array(pos + vel, dtype=np.float64)
    return obs if np.isfinite(obs).all() else None


names_st = st.lists(st.sampled_from(['hip', 'knee', 'ankle', 'h\u00efp', '']), max_size=4)
values_st = st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=5)


@settings(max_examples=400, deadline=None)
@given(name=names_st, position=values_st, velocity=values_st, effort=values_st, velocity_needed=st.booleans())
def test_message_to_observation_is_exact_or_refused(name, position, velocity, effort, velocity_needed):
    builder = SensorObsBuilder(JOINTS, joint_velocity=velocity_needed, imu=False)
    msg = NS(name=name, position=position, velocity=velocity, effort=effort)
    expected = oracle(JOINTS, velocity_needed, msg)
    try:
        got = builder.build_from_messages(msg)
    except SensorMessageError:
        assert expected is None, f'refused a valid message {msg}'
        return
    assert expected is not None, f'built {got} from a malformed message {msg}'
    np.testing.assert_array_equal(got, expected)


def serialize_joint_state(store, name, position, velocity, effort, sec=5, nanosec=7, frame='base'):
    T = store.types
    msg = T['sensor_msgs/msg/JointState'](
        header=T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
                                        frame_id=frame),
        name=list(name), position=np.array(position, dtype=float), velocity=np.array(velocity, dtype=float),
        effort=np.array(effort, dtype=float))
    return bytes(store.serialize_cdr(msg, 'sensor_msgs/msg/JointState'))


STORE = typestore()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names_st, position=values_st, velocity=values_st, effort=values_st,
       mutation=st.one_of(st.none(), st.tuples(st.just('cut'), st.integers(0, 200)),
                          st.tuples(st.just('flip'), st.integers(0, 200), st.integers(1, 255)),
                          st.tuples(st.just('junk'), st.binary(max_size=64))))
def test_cdr_bytes_to_observation_is_exact_or_refused(name, position, velocity, effort, mutation):
    """Encoded (by rosbags), possibly truncated, bit-flipped or replaced bytes: the fast decoder and
    the builder give the observation the bytes mean (as rosbags' decoder reads them) or refuse."""
    raw = bytearray(serialize_joint_state(STORE, name, position, velocity, effort))
    if mutation is not None:
        if mutation[0] == 'cut':
            raw = raw[:mutation[1]]
        elif mutation[0] == 'flip' and mutation[1] < len(raw):
            raw[mutation[1]] ^= mutation[2]
        elif mutation[0] == 'junk':
            raw = bytearray(b'\x00\x01\x00\x00') + bytearray(mutation[1])
    raw = bytes(raw)
    builder = SensorObsBuilder(JOINTS, joint_velocity=True, imu=False)
    try:
        fast = deserialize(STORE, raw, 'sensor_msgs/msg/JointState')
    except cdr.CdrError:
        return  # a clear refusal
    try:
        reference = STORE.deserialize_cdr(raw, 'sensor_msgs/msg/JointState')
    except Exception:  # noqa: BLE001 - rosbags is stricter about trailing bytes; compare with what we decoded
        reference = None
    if reference is not None:
        assert list(fast.name) == list(reference.name)
        for key in ('position', 'velocity', 'effort'):
            np.testing.assert_array_equal(getattr(fast, key), getattr(reference, key))
    expected = oracle(JOINTS, True, fast)
    try:
        got = builder.build_from_messages(fast)
    except SensorMessageError:
        assert expected is None
        return
    assert expected is not None
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=10, max_size=10),
       frame=st.text(max_size=12), cut=st.one_of(st.none(), st.integers(0, 400)),
       flip=st.one_of(st.none(), st.tuples(st.integers(0, 400), st.integers(1, 255))))
def test_imu_bytes_to_observation_is_exact_or_refused(values, frame, cut, flip):
    T = STORE.types
    o, g, a = values[0:4], values[4:7], values[7:10]
    msg = T['sensor_msgs/msg/Imu'](
        header=T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=1, nanosec=2), frame_id=frame),
        orientation=T['geometry_msgs/msg/Quaternion'](x=o[0], y=o[1], z=o[2], w=o[3]),
        orientation_covariance=np.zeros(9), angular_velocity=T['geometry_msgs/msg/Vector3'](x=g[0], y=g[1], z=g[2]),
        angular_velocity_covariance=np.zeros(9),
        linear_acceleration=T['geometry_msgs/msg/Vector3'](x=a[0], y=a[1], z=a[2]),
        linear_acceleration_covariance=np.zeros(9))
    raw = bytearray(STORE.serialize_cdr(msg, 'sensor_msgs/msg/Imu'))
    if flip is not None and flip[0] < len(raw):
        raw[flip[0]] ^= flip[1]
    raw = bytes(raw if cut is None else raw[:cut])
    try:
        fast = deserialize(STORE, raw, 'sensor_msgs/msg/Imu')
    except cdr.CdrError:
        return
    reference = STORE.deserialize_cdr(raw, 'sensor_msgs/msg/Imu') if flip is None and cut is None else None
    got = [fast.orientation.x, fast.orientation.y, fast.orientation.z, fast.orientation.w, fast.angular_velocity.x,
           fast.angular_velocity.y, fast.angular_velocity.z, fast.linear_acceleration.x,
           fast.linear_acceleration.y, fast.linear_acceleration.z]
    if reference is not None:
        np.testing.assert_array_equal(got, values)
        assert fast.header.frame_id == reference.header.frame_id == frame
    builder = SensorObsBuilder(JOINTS, joint_velocity=False, imu=True)
    joints = NS(name=list(JOINTS), position=[1.0, 2.0], velocity=[], effort=[])
    try:
        obs = builder.build_from_messages(joints, fast)
    except SensorMessageError:
        assert not np.isfinite(got).all()
        return
    np.testing.assert_array_equal(obs, [1.0, 2.0, *got[4:7], *got[7:10], *got[0:4]])


def test_truncated_imu_and_joint_state_raise_cdr_error():
    raw = serialize_joint_state(STORE, ['hip', 'knee'], [1.0, 2.0], [3.0, 4.0], [])
    for cut in range(4, len(raw) - 1, 3):
        try:
            msg = cdr.joint_state(raw[:cut])
        except cdr.CdrError as exc:
            assert 'malformed joint_state CDR' in str(exc)
        else:  # only a cut inside the trailing empty effort array can still decode, with that array empty
            assert list(msg.name) == ['hip', 'knee'] and msg.position.tolist() == [1.0, 2.0]
    with pytest.raises(cdr.CdrError, match='malformed imu CDR'):
        cdr.imu(b'\x00\x01\x00\x00' + b'\x00' * 30)


# ---------------------------------------------------------------- recorder path and bags
def cartpole_spec():
    from distill_ros.sim import DistillEnv
    return DatasetSpec.for_env(DistillEnv('cartpole'))


def test_assembler_counts_and_names_bad_messages_or_refuses_them_when_strict():
    spec = cartpole_spec()
    topics = {'joints': '/robot/joint_states'}
    assembler = EpisodeAssembler(spec, None, topics=topics)
    bad = NS(name=['slider', 'hinge'], position=[0.5], velocity=[], effort=[])
    assembler.add('joints', 1_500_000_000, bad)
    assembler.add('privileged', 1_500_000_000, (['a', 'b'], [1.0]))
    assert assembler.stats.bad == {'joints': 1, 'privileged': 1}
    assert not assembler.streams['joints'].stamps, 'a bad message is never paired'
    strict = EpisodeAssembler(spec, None, topics=topics, strict=True)
    with pytest.raises(MalformedMessage, match=r'/robot/joint_states: message stamped 1.500000000 s: malformed '
                                               r'JointState: 2 names but position 1 values; expected 2 each'):
        strict.add('joints', 1_500_000_000, bad)


@pytest.fixture
def short_cartpole():
    import yaml

    from distill_ros.paths import config_path
    from distill_ros.sim.task import parse_task
    data = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    data['env']['max_episode_steps'] = 10
    return parse_task(data)


def test_bag_with_malformed_or_mismatched_joints_is_refused_by_name(tmp_path, short_cartpole):
    from test_dataset_and_bags import write_bag

    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.sim import DistillEnv
    from distill_ros.teachers import shipped_teacher
    teacher = ckpt_io.load(shipped_teacher('cartpole'))
    env = DistillEnv(short_cartpole)
    spec = DatasetSpec.for_env(env)
    # A driver that publishes one position for its two joints.
    write_bag(tmp_path / 'short', env, teacher, seeds=[1], joint_order=['slider', 'hinge'], positions=1)
    with pytest.raises(BagError, match=r'short: malformed message: /joint_states: message stamped 0.000000000 s: '
                                       r'malformed JointState: 2 names but position 1 values; expected 2 each'):
        bag_to_dataset(tmp_path / 'short', tmp_path / 'a', spec, has_imu=True)
    # A bag of another robot: a joint the task reads is missing. Not damage: a mismatch.
    write_bag(tmp_path / 'other', env, teacher, seeds=[1], joint_order=['slider'])
    with pytest.raises(BagError, match=r"other: the bag does not match task 'cartpole': /joint_states: message "
                                       r"stamped 0.000000000 s: sensor reading lacks joint 'hinge'"):
        bag_to_dataset(tmp_path / 'other', tmp_path / 'b', spec, has_imu=True)


# ---------------------------------------------------------------- the controller's current cause
def test_controller_names_the_current_cause_not_the_previous_one(tmp_path):
    from test_control import imu_msg, make_controller, random_student, sensor_sequence

    ckpt = random_student(tmp_path)
    ctl = make_controller(ckpt, timeout_s=0.1)
    ms = 1_000_000
    obs = sensor_sequence(2)[0]
    now = ctl.activated_ns
    joints = NS(name=['slider', 'hinge'], position=list(obs[:2]), velocity=[], effort=[], header=None)
    ctl.sensors(joints, imu_msg(obs[2:]), now + 10 * ms)
    assert ctl.tick(now + 10 * ms).source == 'policy' and ctl.fault(now + 10 * ms) == ''
    short = NS(name=['hinge', 'slider'], position=[0.1], velocity=[], effort=[], header=None)
    ctl.sensors(short, imu_msg(obs[2:]), now + 20 * ms)
    assert ctl.tick(now + 20 * ms).source == 'repeat', 'a malformed sample is dropped, never an exception'
    assert ctl.fault(now + 20 * ms) == 'joint_states: malformed JointState: 2 names but position 1 values; ' \
                                      'expected 2 each (velocity and effort may also be empty)'
    stale = ctl.tick(now + 115 * ms)
    assert stale.source == 'safe' and stale.reason == 'stale'
    # The malformed publisher stopped: the cause now is silence, not the old defect.
    assert ctl.fault(now + 200 * ms) == 'no message on joint_states for 0.18 s'
    nan = NS(name=['slider', 'hinge'], position=[float('nan'), 0.0], velocity=[], effort=[], header=None)
    ctl.sensors(nan, imu_msg(obs[2:]), now + 210 * ms)
    ctl.tick(now + 210 * ms)
    assert 'NaN or Inf' in ctl.fault(now + 215 * ms)
    assert ctl.fault(now + 400 * ms).startswith('no message on joint_states for 0.19 s')


# ---------------------------------------------------------------- the live controller
def test_live_controller_treats_malformed_joint_states_as_stale_and_says_why(ros, start_node):
    """A driver whose JointState carries one position for two joints (in spec order, then in
    another order): no command built from it, the safe action after the timeout, /diagnostics
    naming topic and lengths, and no traceback in the node's log."""
    pytest.importorskip('rclpy')
    from controller_checks import Driver, diagnostics
    from std_msgs.msg import Float64MultiArray

    from distill_ros.nodes import messages as m
    from distill_ros.nodes.common import RELIABLE_DEEP

    rate = 50.0
    ctl = start_node('student_controller_node', {
        'checkpoint': 'cartpole', 'control_rate_hz': rate, 'sensor_timeout': 0.1, 'safe_action': 'zero',
        'auto_activate': True, 'sensor_check_timeout': 30.0})
    driver = Driver(ros.node)
    seen = diagnostics(ros)
    commands: list[list[float]] = []
    ros.node.create_subscription(Float64MultiArray, 'commands', lambda msg: commands.append(list(msg.data)),
                                 RELIABLE_DEEP)
    names = [['slider', 'hinge']]
    stamp = [1000 * 10**9]

    def publish():
        stamp[0] += 20_000_000
        reading = driver.builder.reading(driver.obs)
        joints = m.joint_state(reading, stamp[0])
        joints.name = names[0]
        joints.position = [0.05]  # one value for two names
        driver.joint_pub.publish(joints)
        driver.imu_pub.publish(m.imu(reading, stamp[0], 'imu_link'))
    timer = ros.node.create_timer(1 / rate, publish)

    def warned() -> bool:
        return bool(seen) and seen[-1][0] == 2 and 'position 1 values' in seen[-1][1] \
            and '/joint_states' in seen[-1][1] and int(seen[-1][2]['bad_samples']) > 5
    assert ros.spin_until(lambda: warned(), timeout=40), (seen[-1:], ctl.log())
    names[0] = ['hinge', 'slider']  # another order: this used to raise IndexError on every tick
    count = int(seen[-1][2]['bad_samples'])
    assert ros.spin_until(lambda: warned() and int(seen[-1][2]['bad_samples']) > count + 5,
                          timeout=10), seen[-1:]
    timer.cancel()
    assert commands and all(c == [0.0] for c in commands), 'only the safe action was commanded'
    # Silence now: the cause named is the silent topic, not the old defect.
    assert ros.spin_until(lambda: seen and 'no message on /joint_states' in seen[-1][1], timeout=10), seen[-1:]
    ctl.stop()
    log = ctl.log()
    assert 'Traceback' not in log and 'IndexError' not in log, log
    assert 'control tick failed' not in log


def test_recorder_counts_and_names_malformed_messages_in_diagnostics(ros, start_node, tmp_path):
    """The live recorder drops a malformed JointState as a bad sample and says so on /diagnostics
    (WARN: topic, lengths found and expected), and keeps running."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from sensor_msgs.msg import JointState

    from distill_ros.nodes.common import RELIABLE, RELIABLE_DEEP

    recorder = start_node('recorder_node', {'task': 'cartpole', 'dataset': str(tmp_path / 'ds')})
    seen = []
    ros.node.create_subscription(DiagnosticArray, '/diagnostics',
                                 lambda msg: seen.extend(s for s in msg.status if 'recording' in s.name), RELIABLE_DEEP)
    pub = ros.node.create_publisher(JointState, 'joint_states', RELIABLE)
    assert ros.spin_until(lambda: pub.get_subscription_count() > 0, timeout=30), recorder.log()
    bad = JointState(name=['slider', 'hinge'], position=[0.5])
    bad.header.stamp.sec = 7
    warn = int.from_bytes(DiagnosticStatus.WARN, 'little')

    def warned() -> bool:
        pub.publish(bad)
        return any(int.from_bytes(s.level, 'little') == warn and 'bad messages dropped' in s.message for s in seen)
    assert ros.spin_until(warned, timeout=30), ([s.message for s in seen[-2:]], recorder.log())
    status = next(s for s in reversed(seen) if 'bad messages dropped' in s.message)
    assert '/joint_states: message stamped 7.000000000 s: malformed JointState: 2 names but position 1 values; ' \
           'expected 2 each' in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert int(values['bad_messages']) >= 1 and values['unpaired'] == '0'
    assert recorder.poll() is None, recorder.log()
    recorder.stop()
    assert recorder.proc.returncode == 0 and 'Traceback' not in recorder.log(), recorder.log()


def test_teacher_reads_named_vectors_exactly_or_refuses_them():
    pytest.importorskip('rclpy')
    from sensor_msgs.msg import JointState

    from distill_ros.nodes.messages import read_named_vector
    from distill_ros.observation import SensorMismatch

    names = ['qpos/a', 'qvel/a']
    ok = read_named_vector(JointState(name=['qvel/a', 'qpos/a', 'x'], position=[2.0, 1.0, 9.0]), names, 'state')
    assert ok.tolist() == [1.0, 2.0]
    with pytest.raises(MalformedMessage, match=r'state: malformed named vector: 2 names but position 1 values'):
        read_named_vector(JointState(name=names, position=[1.0]), names, 'state')
    with pytest.raises(MalformedMessage, match=r"duplicate names \['qpos/a'\]"):
        read_named_vector(JointState(name=['qpos/a', 'qpos/a'], position=[1.0, 2.0]), names, 'state')
    with pytest.raises(MalformedMessage, match=r"NaN or Inf in \['qvel/a'\]"):
        read_named_vector(JointState(name=names, position=[1.0, float('nan')]), names, 'state')
    with pytest.raises(SensorMismatch, match=r"state: message lacks \['qvel/a'\]"):
        read_named_vector(JointState(name=['qpos/a'], position=[1.0]), names, 'state')
