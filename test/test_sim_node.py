"""sim_node as a real process over real DDS: stamps, names, rates, resets, agreement with the
in-process simulation of the same seeds, and a locomotion task's velocity command from cmd_vel."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip('rclpy')
from geometry_msgs.msg import Twist  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Imu, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from distill_ros.nodes import messages as m  # noqa: E402
from distill_ros.nodes.common import LATCHED, SENSOR_DATA  # noqa: E402
from distill_ros.nodes.common import RELIABLE_DEEP as RELIABLE  # noqa: E402
from distill_ros.observation import sensor_reading  # noqa: E402
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv  # noqa: E402
from distill_ros.stamps import stamp_ns  # noqa: E402

DT_NS = 40_000_000  # cartpole control period


def action_for(privileged: np.ndarray) -> np.ndarray:
    """A weak deterministic controller: keeps episodes short but not trivial."""
    return np.array([np.clip(2.0 * privileged[1] + 0.1 * privileged[3], -3, 3)])


def test_lockstep_matches_in_process_rollout(ros, start_node):
    seed, episodes = 7, 2
    sim = start_node('sim_node', {'task': 'cartpole', 'mode': 'lockstep', 'seed': seed, 'max_episodes': episodes,
                                  'command_type': 'JointState', 'lockstep_timeout': 0.3})
    node = ros.node
    joints: dict[int, JointState] = {}
    imus: dict[int, Imu] = {}
    privileged: dict[int, np.ndarray] = {}
    steps: list[JointState] = []
    announcements: list[JointState] = []
    clock: list[int] = []
    answered: set[int] = set()
    command_pub = node.create_publisher(JointState, 'commands', RELIABLE)

    def on_privileged(msg: JointState) -> None:
        ns = stamp_ns(msg.header.stamp)
        privileged[ns] = np.array(msg.position)
        if ns not in answered:
            answered.add(ns)
            command_pub.publish(m.named_vector(['slider'], action_for(privileged[ns]), ns))

    def by_stamp(store: dict):
        return lambda msg: store.setdefault(stamp_ns(msg.header.stamp), msg)

    node.create_subscription(JointState, 'joint_states', by_stamp(joints), SENSOR_DATA)
    node.create_subscription(Imu, 'imu/data', by_stamp(imus), SENSOR_DATA)
    node.create_subscription(JointState, 'privileged/state', on_privileged, RELIABLE)
    node.create_subscription(JointState, 'sim/step', steps.append, RELIABLE)
    node.create_subscription(JointState, 'sim/episode', announcements.append, LATCHED)
    node.create_subscription(Clock, '/clock', lambda msg: clock.append(stamp_ns(msg.clock)), RELIABLE)

    assert ros.spin_until(lambda: sim.poll() is not None, timeout=60), f'sim_node did not finish:\n{sim.log()}'
    assert sim.poll() == 0, sim.log()
    ros.spin_until(lambda: False, timeout=0.3)  # drain what is still in flight

    # Replay the same seeds and actions in process: every sensor and privileged value must agree.
    env = DistillEnv('cartpole')
    builder = env.sensor_builder
    ns = 0
    rewards, actions = [], []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        announcement = announcements[episode]
        assert stamp_ns(announcement.header.stamp) == ns
        ann = dict(zip(announcement.name, announcement.position))
        assert ann['episode'] == episode and ann['seed'] == seed + episode
        assert ann['dynamics/mass_scale'] == pytest.approx(info['dynamics']['mass_scale'])
        done = False
        while not done:
            assert list(joints[ns].name) == ['slider', 'hinge']
            assert imus[ns].header.frame_id == 'imu_link'
            topic_obs = builder.build(sensor_reading(joints[ns], imus[ns]))
            np.testing.assert_array_equal(topic_obs, obs[SENSOR])
            np.testing.assert_array_equal(privileged[ns], obs[PRIVILEGED])
            actions.append(action_for(privileged[ns]))
            obs, reward, terminated, truncated, _ = env.step(actions[-1])
            rewards.append(reward)
            done = terminated or truncated
            ns += DT_NS
    total_steps = ns // DT_NS
    assert len(steps) == total_steps
    stamps = [stamp_ns(s.header.stamp) for s in steps]
    assert stamps == list(range(0, ns, DT_NS)), 'each step is stamped with the observation it answered'
    info_by_name = [dict(zip(s.name, s.position)) for s in steps]
    assert [s['action/slider'] for s in info_by_name] == [a[0] for a in actions]
    assert sum(s['terminated'] + s['truncated'] for s in info_by_name) == episodes
    assert [s['reward'] for s in info_by_name] == rewards
    assert clock == sorted(clock) and clock[-1] == ns - DT_NS


def test_realtime_holds_command_at_control_rate(ros, start_node):
    sim = start_node('sim_node', {'task': 'cartpole', 'mode': 'realtime', 'seed': 1, 'randomize': False})
    node = ros.node
    received: list[tuple[float, JointState]] = []
    node.create_subscription(JointState, 'joint_states',
                             lambda msg: received.append((node.get_clock().now().nanoseconds, msg)), SENSOR_DATA)
    push = node.create_publisher(Float64MultiArray, 'commands', RELIABLE)
    assert ros.spin_until(lambda: len(received) >= 5, timeout=20), sim.log()
    start = len(received)
    ros.spin_until(lambda: False, timeout=1.5)
    wall = np.diff([t for t, _ in received[start:]]) / 1e9
    rate = 1.0 / np.median(wall)
    assert 12 < rate < 40, f'realtime mode should step near the task rate of 25 Hz, got {rate:.1f} Hz'
    sim_stamps = np.diff([stamp_ns(msg.header.stamp) for _, msg in received[start:]])
    assert set(sim_stamps) == {DT_NS}
    assert node.count_subscribers('cmd_vel') == 0, 'a task without a velocity command subscribed to cmd_vel'

    # One command message is held (zero-order hold) for every following step until the next one.
    executed: list[float] = []
    node.create_subscription(JointState, 'sim/step',
                             lambda msg: executed.append(dict(zip(msg.name, msg.position))['action/slider']), RELIABLE)
    push.publish(Float64MultiArray(data=[0.75]))
    assert ros.spin_until(lambda: 0.75 in executed and len(executed) - executed.index(0.75) >= 8, timeout=10)
    assert executed[executed.index(0.75):] == [0.75] * (len(executed) - executed.index(0.75))
    # Bad commands are refused with a message, as forward_command_controller does.
    push.publish(Float64MultiArray(data=[1.0, 2.0]))
    push.publish(Float64MultiArray(data=[float('nan')]))
    ros.spin_until(lambda: False, timeout=0.5)
    sim.stop()
    assert sim.poll() == 0, sim.log()
    log = sim.log()
    assert 'command has 2 values, expected 1' in log
    assert 'NaN or Inf' in log


@pytest.mark.parametrize('params, expected', [
    ({'mode': 'fast'}, "parameter 'mode' is 'fast'; expected one of ['lockstep', 'realtime']"),
    ({'task': 'no_such_task'}, "unknown task 'no_such_task'"),
    ({'lockstep_timeout': -1.0}, "lockstep_timeout"),
    ({'command_source': 'cmd_vel'}, "'command_source' is cmd_vel, but task cartpole has no velocity command"),
])
def test_bad_parameters_refused_at_start(start_node, params, expected):
    sim = start_node('sim_node', params)
    assert sim.wait(timeout=30) == 2
    assert expected in sim.log()


def test_realtime_waits_for_subscribers_and_loses_no_step(ros, start_node):
    """wait_for_subscribers: the first episode starts only once joint_states is subscribed, so a
    real-time run loses nothing to discovery; commands sent before that are ignored."""
    commands = ros.node.create_publisher(Float64MultiArray, 'commands', 10)
    sim = start_node('sim_node', {'task': 'cartpole', 'mode': 'realtime', 'wait_for_subscribers': 1,
                                  'max_episodes': 1})
    assert ros.spin_until(lambda: ros.node.count_subscribers('/commands') >= 1, timeout=20), sim.log()
    for _ in range(5):   # nothing to answer yet: must not step (or crash) the simulator
        commands.publish(Float64MultiArray(data=[0.0]))
        ros.spin_until(lambda: False, timeout=0.1)
    ros.spin_until(lambda: False, timeout=1.0)
    assert sim.poll() is None, sim.log()
    stamps: list[int] = []
    ros.node.create_subscription(JointState, 'joint_states', lambda msg: stamps.append(stamp_ns(msg.header.stamp)),
                                 RELIABLE)
    assert ros.spin_until(lambda: len(stamps) >= 3, timeout=20), sim.log()
    assert stamps[0] == 0   # the episode's first observation, not a later one


def test_cmd_vel_drives_the_command_and_times_out_to_zero(ros, start_node):
    """command_source cmd_vel: the command in privileged/state (and so in both observations and the
    reward) is zero velocity before any Twist, the Twist's (linear.x, linear.y, angular.z) while
    Twists come, and zero again once the newest is older than cmd_vel_timeout."""
    timeout = 0.3
    sim = start_node('sim_node', {'task': 'quadruped', 'mode': 'lockstep', 'command_source': 'cmd_vel',
                                  'cmd_vel_timeout': timeout, 'lockstep_timeout': 5.0})
    env = DistillEnv('quadruped')
    names = env.privileged_spec.element_names()
    actions = len(env.action_names)
    env.close()
    command_columns = [names.index(f'command/{e}') for e in ('vx', 'vy', 'yaw_rate')]
    commands: list[list[float]] = []
    push = ros.node.create_publisher(Float64MultiArray, 'commands', RELIABLE)
    twist_pub = ros.node.create_publisher(Twist, 'cmd_vel', RELIABLE)

    def on_privileged(msg: JointState) -> None:  # lockstep: answer each observation with the standing pose
        assert list(msg.name) == names
        commands.append([msg.position[i] for i in command_columns])
        push.publish(Float64MultiArray(data=[0.0] * actions))
    ros.node.create_subscription(JointState, 'privileged/state', on_privileged, RELIABLE)
    assert ros.spin_until(lambda: len(commands) >= 10, timeout=30), sim.log()
    assert all(c == [0.0, 0.0, 0.0] for c in commands), 'no Twist yet: zero velocity, not the sampled command'

    twist = Twist()
    twist.linear.x, twist.linear.y, twist.angular.z = 0.8, -0.3, 0.5
    teleop = ros.node.create_timer(0.05, lambda: twist_pub.publish(twist))
    assert ros.spin_until(lambda: commands[-1] == [0.8, -0.3, 0.5], timeout=10), (commands[-1], sim.log())
    mark = len(commands)
    ros.spin_until(lambda: False, timeout=0.5)
    assert len(commands) > mark and all(c == [0.8, -0.3, 0.5] for c in commands[mark:])

    teleop.cancel()
    silent = time.monotonic()
    assert ros.spin_until(lambda: commands[-1] == [0.0, 0.0, 0.0], timeout=5), commands[-1]
    assert time.monotonic() - silent >= timeout - 0.1
    sim.stop()
    assert sim.poll() == 0, sim.log()


def test_sample_age_task_stamps_sensors_when_read_and_steps_on_commands_stamped_with_them(ros, start_node, tmp_path):
    """A task with the sample age: joint_states and imu/data are stamped when the reading was taken
    (the observation's time minus the episode's latency), sim/step carries that age, the episode
    announcement carries the first sample's stamp, stamps never go back across a reset, and lockstep
    steps on a command stamped with the sensor sample (as the student controller stamps it)."""
    from controller_checks import sample_age_task
    task = sample_age_task(tmp_path)
    seed, episodes = 21, 2   # latency 1 step, then 0
    sim = start_node('sim_node', {'task': task, 'mode': 'lockstep', 'seed': seed, 'max_episodes': episodes,
                                  'command_type': 'JointState', 'lockstep_timeout': 0.3})
    node = ros.node
    joint_stamps: list[int] = []
    imu_stamps: set[int] = set()
    steps: list[JointState] = []
    announcements: list[JointState] = []
    command_pub = node.create_publisher(JointState, 'commands', RELIABLE)

    def on_joints(msg: JointState) -> None:   # answer every sample with its own stamp
        joint_stamps.append(stamp_ns(msg.header.stamp))
        command_pub.publish(m.named_vector(['slider'], [0.0], joint_stamps[-1]))

    node.create_subscription(JointState, 'joint_states', on_joints, SENSOR_DATA)
    node.create_subscription(Imu, 'imu/data', lambda msg: imu_stamps.add(stamp_ns(msg.header.stamp)), SENSOR_DATA)
    node.create_subscription(JointState, 'sim/step', steps.append, RELIABLE)
    node.create_subscription(JointState, 'sim/episode', announcements.append, LATCHED)
    assert ros.spin_until(lambda: sim.poll() is not None, timeout=60), f'sim_node did not finish:\n{sim.log()}'
    assert sim.poll() == 0, sim.log()
    ros.spin_until(lambda: False, timeout=0.3)

    reports = [(stamp_ns(s.header.stamp), dict(zip(s.name, s.position))) for s in steps]
    ages = {r['episode']: set() for _, r in reports}
    for stamp, r in reports:
        ages[r['episode']].add(r['sample_age'])
        sample = stamp - round(r['sample_age'] * 1e9)
        assert sample in joint_stamps and sample in imu_stamps, (stamp, r)
    assert ages == {0.0: {DT_NS / 1e9}, 1.0: {0.0}}
    unique = list(dict.fromkeys(joint_stamps))   # without re-publishes
    assert unique == sorted(set(unique)), 'sensor stamps went back'
    firsts = [next(stamp - round(r['sample_age'] * 1e9) for stamp, r in reports if r['episode'] == e)
              for e in range(episodes)]
    assert [stamp_ns(a.header.stamp) for a in announcements[:episodes]] == firsts
