"""teacher_node driving sim_node over real DDS, against the in-process evaluation of the same teacher."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('rclpy')
from sensor_msgs.msg import JointState  # noqa: E402

from distill_ros.distill.evaluate import privileged_actor, run_episodes  # noqa: E402
from distill_ros.nodes import messages as m  # noqa: E402
from distill_ros.nodes.common import RELIABLE_DEEP as RELIABLE  # noqa: E402
from distill_ros.paths import share_dir  # noqa: E402
from distill_ros.policies import checkpoint as ckpt_io  # noqa: E402
from distill_ros.sim import DistillEnv  # noqa: E402
from distill_ros.stamps import stamp_ns  # noqa: E402
from distill_ros.teachers import shipped_teacher  # noqa: E402


def test_shipped_teacher_drives_sim_in_lockstep(ros, start_node):
    seed, episodes = 100, 2
    sim = start_node('sim_node', {'task': 'cartpole', 'mode': 'lockstep', 'seed': seed, 'max_episodes': episodes,
                                  'command_type': 'JointState', 'lockstep_timeout': 0.5},
                     ros_args=['-r', 'commands:=teacher/action'])
    returns: dict[int, float] = {}
    distributions: dict[int, JointState] = {}
    actions: dict[int, JointState] = {}

    def on_step(msg: JointState) -> None:
        info = dict(zip(msg.name, msg.position))
        returns[int(info['episode'])] = returns.get(int(info['episode']), 0.0) + info['reward']

    step_sub = ros.node.create_subscription(JointState, 'sim/step', on_step, RELIABLE)
    ros.node.create_subscription(JointState, 'teacher/distribution',
                                 lambda msg: distributions.setdefault(stamp_ns(msg.header.stamp), msg), RELIABLE)
    ros.node.create_subscription(JointState, 'teacher/action',
                                 lambda msg: actions.setdefault(stamp_ns(msg.header.stamp), msg), RELIABLE)
    states: list[JointState] = []
    ros.node.create_subscription(JointState, 'privileged/state', states.append, RELIABLE)
    # Start the teacher only once the simulator's topics reach this test (a re-published first
    # observation, a matched sim/step publisher, and a grace period for the other side of the match),
    # so no step of the first episode goes by unseen.
    assert ros.spin_until(lambda: states and step_sub.get_publisher_count() > 0, timeout=30), sim.log()
    ros.spin_until(lambda: False, timeout=1.0)
    # wait_for_subscribers: the sim and this test take its actions before it answers the first state
    teacher = start_node('teacher_node', {'wait_for_subscribers': 2},
                         ros_args=['--params-file', str(share_dir() / 'config' / 'teacher.yaml')])
    assert ros.spin_until(lambda: sim.poll() is not None, timeout=120), f'{sim.log()}\n{teacher.log()}'
    assert sim.poll() == 0, sim.log()
    assert teacher.poll() is None, teacher.log()
    ros.spin_until(lambda: False, timeout=0.3)

    ckpt = ckpt_io.load(shipped_teacher('cartpole'))
    expected = run_episodes(DistillEnv('cartpole'), privileged_actor(ckpt), [seed + i for i in range(episodes)])
    measured = [returns[i] for i in range(episodes)]
    np.testing.assert_allclose(measured, [r.ret for r in expected], rtol=1e-6)
    assert min(measured) >= 900, 'the shipped teacher balances the pole'

    stamp = sorted(actions)[5]
    dist = dict(zip(distributions[stamp].name, distributions[stamp].position))
    assert dist['std/slider'] > 0
    assert actions[stamp].position[0] == pytest.approx(np.clip(dist['mean/slider'], -3, 3))


def test_teacher_takes_states_only_once_its_action_subscribers_are_matched(ros, start_node):
    """wait_for_subscribers counts matched subscriptions on teacher/action: with one of the two it
    asks for, it does not even subscribe to privileged/state (a simulator waiting for that
    subscription knows the teacher's answers are heard), so no state is answered; the second
    subscription releases it."""
    teacher = start_node('teacher_node', {'task': 'cartpole', 'wait_for_subscribers': 2})
    actions: list[JointState] = []
    ros.node.create_subscription(JointState, 'teacher/action', actions.append, RELIABLE)
    state_pub = ros.node.create_publisher(JointState, 'privileged/state', RELIABLE)
    env = DistillEnv('cartpole')
    obs, _ = env.reset(seed=0)
    names = ckpt_io.load(shipped_teacher('cartpole')).obs_spec.element_names()
    stamp = [0]

    def publish_state() -> bool:
        stamp[0] += 1
        state_pub.publish(m.named_vector(names, obs['privileged'], stamp[0], 'cartpole'))
        return bool(actions)

    assert ros.spin_until(lambda: 'parameters) on task cartpole' in teacher.log(), timeout=60), teacher.log()
    # 4 s with one matched subscription: no subscription to the states, none answered
    assert not ros.spin_until(lambda: publish_state() or state_pub.get_subscription_count() > 0, timeout=4.0)
    ros.node.create_subscription(JointState, 'teacher/action', lambda msg: None, RELIABLE)
    assert ros.spin_until(lambda: state_pub.get_subscription_count() > 0, timeout=30), teacher.log()
    assert ros.spin_until(lambda: publish_state(), timeout=30), teacher.log()
    assert 'matched with 2 subscriptions' in teacher.log()


def test_teacher_refuses_checkpoint_of_another_task(start_node):
    teacher = start_node('teacher_node', {'task': 'hopper', 'checkpoint': str(shipped_teacher('cartpole'))})
    assert teacher.wait(timeout=60) == 2, teacher.log()
    log = teacher.log()
    assert "parameter 'checkpoint'" in log and 'layout mismatch' in log, log


def test_teacher_refuses_missing_checkpoint(start_node, tmp_path):
    teacher = start_node('teacher_node', {'task': 'cartpole', 'checkpoint': str(tmp_path / 'nothing')})
    assert teacher.wait(timeout=60) == 2
    assert 'policy.json is missing' in teacher.log()


def test_teacher_node_answers_with_an_imported_onnx_graph_teacher(ros, start_node, tmp_path):
    """An rsl_rl export (normalizer inside the graph) imported as an ONNX graph teacher: teacher_node
    answers a state with the graph's action and the std given at import."""
    from test_importers import rsl_rl_actions, rsl_rl_actor, rsl_rl_export

    from distill_ros.teachers.importers import import_teacher

    env = DistillEnv('cartpole')
    model = rsl_rl_actor(env.privileged_spec.size, 1)
    onnx_path, _ = rsl_rl_export(model, tmp_path)
    ckpt_io.save(import_teacher('onnx', onnx_path, env, action_std=0.25), tmp_path / 'teacher')
    assert type(ckpt_io.load(tmp_path / 'teacher').model).__name__ == 'OnnxPolicy'
    teacher = start_node('teacher_node', {'task': 'cartpole', 'checkpoint': str(tmp_path / 'teacher'),
                                          'wait_for_subscribers': 1})
    distributions: list[JointState] = []
    ros.node.create_subscription(JointState, 'teacher/distribution', distributions.append, RELIABLE)
    ros.node.create_subscription(JointState, 'teacher/action', lambda msg: None, RELIABLE)
    state_pub = ros.node.create_publisher(JointState, 'privileged/state', RELIABLE)
    obs, _ = env.reset(seed=3)
    names = env.privileged_spec.element_names()
    assert ros.spin_until(lambda: state_pub.get_subscription_count() > 0, timeout=60), teacher.log()

    def publish_state() -> bool:
        state_pub.publish(m.named_vector(names, obs['privileged'], 7, 'cartpole'))
        return bool(distributions)

    assert ros.spin_until(publish_state, timeout=30), teacher.log()
    dist = dict(zip(distributions[0].name, distributions[0].position))
    assert dist['mean/slider'] == pytest.approx(rsl_rl_actions(model, obs['privileged'][None])[0, 0], abs=1e-5)
    assert dist['std/slider'] == pytest.approx(0.25, rel=1e-6)
