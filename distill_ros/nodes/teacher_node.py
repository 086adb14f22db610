"""teacher_node: runs the privileged teacher on the simulator's privileged state.

Subscribes:
  privileged/state       sensor_msgs/JointState   named vector from sim_node (mapped by name)
Publishes:
  teacher/action         sensor_msgs/JointState   action by joint name; header.stamp = the stamp of
                                                  the state it answers (sim_node in lockstep with
                                                  command_type JointState can take it as its command)
  teacher/distribution   sensor_msgs/JointState   named vector mean/<joint>, std/<joint> of the
                                                  teacher's Gaussian, for logit matching downstream
"""
from __future__ import annotations

import time

import numpy as np
import torch
from rclpy.node import Node
from sensor_msgs.msg import JointState

from distill_ros.nodes import messages as m
from distill_ros.nodes.common import RELIABLE_DEEP, SubscriptionGate, run
from distill_ros.nodes.params import Param, ParameterError, declare
from distill_ros.observation import MalformedMessage, SensorMismatch
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.mlp import parameter_count
from distill_ros.sim import DistillEnv
from distill_ros.stamps import NS_PER_S, stamp_ns
from distill_ros.teachers import shipped_teacher

PARAMS = (
    Param('task', 'cartpole', 'task name from config/tasks/ or task YAML path; the checkpoint must fit it'),
    Param('checkpoint', '', 'teacher checkpoint folder; empty: the teacher shipped for the task'),
    Param('deterministic', True, 'publish the distribution mean (true) or a sample from it (false)'),
    Param('seed', 0, 'seed for sampled actions', low=0, high=2**31 - 1),
    Param('max_rate_hz', 0.0, 'answer at most this many states per second of sim time (0: every state)',
          low=0.0, high=100000.0),
    Param('wait_for_subscribers', 0, 'subscribe to privileged/state only once teacher/action is matched with this '
          'many subscriptions (then 0.5 s more for teacher/distribution), so a recorder started beside it misses '
          'no action and a simulator waiting for the teacher\'s subscription knows its answers are heard; '
          'sim_node in lockstep re-publishes the state it waits on', low=0, high=1000),
)


class TeacherNode(Node):
    def __init__(self):
        super().__init__('teacher_node')
        p = declare(self, PARAMS)
        self.params = p
        env = DistillEnv(p['task'])
        path = p['checkpoint'] or shipped_teacher(env.task.name)
        try:
            self.teacher = ckpt_io.load(path)
            if self.teacher.obs_source != 'privileged':
                raise ckpt_io.CheckpointError(f'checkpoint {path} reads {self.teacher.obs_source} observations; '
                                              f'teacher_node needs a privileged-observation teacher')
            self.teacher.check_env(env, f' on task {env.task.name}')
        except ckpt_io.CheckpointError as exc:
            raise ParameterError(f'parameter \'checkpoint\': {exc}') from exc
        env.close()
        torch.set_num_threads(1)
        self.state_names = self.teacher.obs_spec.element_names()
        with torch.no_grad():   # an ONNX graph teacher makes its onnxruntime session here, not on the first state
            self.teacher.model.distribution(torch.zeros(len(self.state_names)))
        self.action_names = self.teacher.action_names
        self.distribution_names = [f'mean/{n}' for n in self.action_names] + [f'std/{n}' for n in self.action_names]
        self.rng = np.random.default_rng(p['seed'])
        self.min_period_ns = int(NS_PER_S / p['max_rate_hz']) if p['max_rate_hz'] > 0 else 0
        self.last_answered_ns: int | None = None
        self.inference_s: list[float] = []
        self.bad_states = 0

        self.action_pub = self.create_publisher(JointState, 'teacher/action', RELIABLE_DEEP)
        self.distribution_pub = self.create_publisher(JointState, 'teacher/distribution', RELIABLE_DEEP)
        self.gate = SubscriptionGate(self.action_pub, p['wait_for_subscribers'])
        if self.gate.is_open:
            self.listen()
        else:
            self.wait_timer = self.create_timer(0.05, self.check_subscribers)
        self.get_logger().info(f'teacher {path} ({parameter_count(self.teacher.model):,} '
                               f'parameters) on task {p["task"]}; actions {self.action_names}')

    def check_subscribers(self) -> None:
        if self.gate.check():
            self.wait_timer.cancel()
            self.get_logger().info(f"teacher/action matched with {self.action_pub.get_subscription_count()} "
                                   f"subscriptions; answering states")
            self.listen()

    def listen(self) -> None:
        self.create_subscription(JointState, 'privileged/state', self.on_state, RELIABLE_DEEP)

    def on_state(self, msg: JointState) -> None:
        ns = stamp_ns(msg.header.stamp)
        if self.min_period_ns and self.last_answered_ns is not None and ns - self.last_answered_ns < self.min_period_ns:
            return
        try:
            state = m.read_named_vector(msg, self.state_names, self.resolve_topic_name('privileged/state'))
        except SensorMismatch as exc:
            self.get_logger().error(f'{exc}; is the simulator running the task this teacher was '
                                    f'trained on?', throttle_duration_sec=2.0)
            return
        except MalformedMessage as exc:
            self.bad_states += 1
            self.get_logger().warning(f'bad sample dropped ({self.bad_states} in all): {exc}',
                                      throttle_duration_sec=2.0)
            return
        start = time.perf_counter()
        with torch.no_grad():
            mean, std = self.teacher.model.distribution(torch.as_tensor(state, dtype=torch.float32))
        mean, std = mean.numpy().astype(np.float64), std.numpy().astype(np.float64)
        action = mean if self.params['deterministic'] else mean + std * self.rng.standard_normal(mean.shape)
        action = np.clip(action, self.teacher.action_low, self.teacher.action_high)
        self.inference_s.append(time.perf_counter() - start)
        self.action_pub.publish(m.named_vector(self.action_names, action, ns, msg.header.frame_id))
        self.distribution_pub.publish(m.named_vector(self.distribution_names, np.concatenate([mean, std]), ns))
        self.last_answered_ns = ns


def main(args: list[str] | None = None) -> None:
    raise SystemExit(run(TeacherNode, args))


if __name__ == '__main__':
    main()
