"""Checks and a fake robot driver shared by the student controller tests and their launch twins."""
from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Imu, JointState

from distill_ros.nodes import messages as m
from distill_ros.nodes.common import RELIABLE, RELIABLE_DEEP
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.students import make_student
from distill_ros.sim import SENSOR, DistillEnv

NS = 1_000_000_000
# The topics of a ros2_control robot, as student.launch.py's topic arguments remap them.
ROBOT_TOPICS = {'joint_states': '/robot/joint_states', 'imu/data': '/imu_sensor_broadcaster/imu',
                'commands': '/forward_effort_controller/commands'}


class Driver:
    """Publishes cartpole sensor readings as a robot driver would: joint_states then imu/data."""

    def __init__(self, node, joint_topic: str = 'joint_states', imu_topic: str = 'imu/data'):
        self.joint_pub = node.create_publisher(JointState, joint_topic, RELIABLE)
        self.imu_pub = node.create_publisher(Imu, imu_topic, RELIABLE)
        env = DistillEnv('cartpole', randomize=False)
        self.builder = env.sensor_builder
        obs, _ = env.reset(seed=0)
        self.obs = obs[SENSOR].copy()
        env.close()

    def publish(self, obs: np.ndarray | None = None, stamp_ns: int = 0, names: list[str] | None = None) -> None:
        """One sample; `names` publishes the joints in that order (unknown names get 0.0)."""
        reading = self.builder.reading(self.obs if obs is None else obs)
        joints = m.joint_state(reading, stamp_ns)
        if names is not None:
            joints.name = list(names)
            joints.position = [reading.joint_position.get(n, 0.0) for n in names]
        self.joint_pub.publish(joints)
        self.imu_pub.publish(m.imu(reading, stamp_ns, 'imu_link'))

    def connected(self) -> bool:
        return self.joint_pub.get_subscription_count() > 0 and self.imu_pub.get_subscription_count() > 0


def diagnostics(ros) -> list:
    """Every /diagnostics status this test sees, as (level, message, values dict)."""
    seen: list = []

    def on(msg: DiagnosticArray) -> None:
        for s in msg.status:
            if 'control loop' in s.name:
                seen.append((int.from_bytes(s.level, 'little') if isinstance(s.level, bytes) else int(s.level),
                             s.message, {kv.key: kv.value for kv in s.values}))
    ros.node.create_subscription(DiagnosticArray, '/diagnostics', on, RELIABLE_DEEP)
    return seen


def quadruped_student(folder) -> str:
    """A random-weight student of the quadruped task, whose sensor observation ends with the
    velocity command (vx, vy, yaw_rate); returns its folder."""
    import torch

    from distill_ros.sim.env import deployment
    env = DistillEnv('quadruped')
    torch.manual_seed(0)
    ckpt = ckpt_io.Checkpoint(model=make_student('mlp', env.sensor_spec.size, len(env.action_names), 1, hidden=[32]),
                              obs_source='sensor', obs_spec=env.sensor_spec, action_names=env.action_names,
                              action_low=env.action_space.low.astype(np.float64),
                              action_high=env.action_space.high.astype(np.float64), task='quadruped', role='student',
                              deployment=deployment('quadruped'))   # as distillation writes it
    env.close()
    return str(ckpt_io.save(ckpt, folder))


def sample_age_task(folder) -> str:
    """cartpole with `sensors.sample_age: true` (the student reads how old its sample is), as a task
    YAML in `folder`; returns its path."""
    import yaml

    from distill_ros.paths import config_path
    data = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    data['sensors']['sample_age'] = True
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / 'cartpole_age.yaml'
    path.write_text(yaml.safe_dump(data))
    return str(path)


def sample_age_student(task: str, folder) -> str:
    """A random-weight student of `task` (a sample_age_task); returns its folder."""
    import torch
    env = DistillEnv(task)
    torch.manual_seed(0)
    ckpt = ckpt_io.Checkpoint(model=make_student('mlp', env.sensor_spec.size, 1, 1, hidden=[16]), obs_source='sensor',
                              obs_spec=env.sensor_spec, action_names=env.action_names, action_low=np.array([-3.0]),
                              action_high=np.array([3.0]), task='cartpole', role='student')
    env.close()
    return str(ckpt_io.save(ckpt, folder))


def check_balancing(ros, min_steps: int, timeout: float) -> dict[int, int]:
    """sim_node (realtime) driven by the controller keeps the pole up for `min_steps` steps in one
    episode (InvertedPendulum ends an episode once the pole leaves +-0.2 rad); returns steps per
    episode. A random student falls within ~20 steps."""
    steps: dict[int, int] = {}
    actions: list[float] = []

    def on_step(msg: JointState) -> None:
        info = dict(zip(msg.name, msg.position))
        steps[int(info['episode'])] = steps.get(int(info['episode']), 0) + 1
        actions.append(info['action/slider'])
    ros.node.create_subscription(JointState, 'sim/step', on_step, RELIABLE_DEEP)
    assert ros.spin_until(lambda: max(steps.values(), default=0) >= min_steps, timeout=timeout), \
        f'no episode reached {min_steps} steps: {steps}'
    assert np.all(np.isfinite(actions)) and np.any(np.array(actions) != 0.0)
    return steps


def check_remapped_controller(ros, remaps: dict[str, str]) -> None:
    """The controller reads the remapped sensor topics and commands the remapped controller topic."""
    from std_msgs.msg import Float64MultiArray

    driver = Driver(ros.node, remaps['joint_states'], remaps['imu/data'])
    got: list[list[float]] = []
    ros.node.create_subscription(Float64MultiArray, remaps['commands'], lambda c: got.append(list(c.data)),
                                 RELIABLE_DEEP)
    stamp = [0]

    def publish():
        stamp[0] += 40_000_000
        driver.publish(stamp_ns=stamp[0])
    ros.node.create_timer(0.04, publish)
    assert ros.spin_until(lambda: sum(c[0] != 0.0 for c in got) >= 10, timeout=60), got[-5:]
    assert all(len(c) == 1 and np.isfinite(c[0]) for c in got)


def lifecycle_state(ros, node: str, timeout: float = 10.0) -> str:
    """The lifecycle state label of `node` (e.g. 'active'), from its get_state service."""
    from lifecycle_msgs.srv import GetState
    client = ros.node.create_client(GetState, f'{node}/get_state')
    assert ros.spin_until(client.service_is_ready, timeout), f'{node}/get_state is not offered'
    future = client.call_async(GetState.Request())
    assert ros.spin_until(future.done, timeout), f'{node}/get_state did not answer'
    return future.result().current_state.label
