"""sim_node: a MuJoCo task that behaves like a robot driver on ROS 2 topics.

Publishes (relative names, so a namespace moves a whole robot):
  joint_states       sensor_msgs/JointState   noisy encoder readings, by joint name
  imu/data           sensor_msgs/Imu          noisy IMU readings
  privileged/state   sensor_msgs/JointState   named vector: true state and dynamics (sim only)
  sim/step           sensor_msgs/JointState   named vector: reward, terminated, truncated, episode, step
                                              (a task with the sample age: sample_age, seconds) and the
                                              executed action (action/<joint>); stamped with the
                                              observation the action answered
  sim/episode        sensor_msgs/JointState   named vector announcing each reset: episode, seed,
                                              latency and dynamics; stamped with the first sensor sample
  /clock             rosgraph_msgs/Clock      simulation time (other nodes set use_sim_time)
Subscribes:
  commands           std_msgs/Float64MultiArray (forward_command_controller style, joint order of
                     the task) or, with command_type JointState, sensor_msgs/JointState mapped by
                     joint name whose header stamp names the observation it answers (its time, or
                     its sensor sample's stamp).
  cmd_vel            geometry_msgs/Twist      with command_source cmd_vel (a task with a velocity
                     command): the command the robot follows (linear.x, linear.y, angular.z) in both
                     observations and the reward, zero velocity once none has come for cmd_vel_timeout

The velocity command of a locomotion task is, with `command_source` `sampled` (the default), drawn
per episode from the task's ranges, as in training, so recording and teacher runs need no cmd_vel;
with `cmd_vel` it is what a teleop or planner publishes, as on the robot. Either way it is in the
command/* fields of privileged/state.

Sensor latency: a task whose student reads the sample age (`sensors.sample_age: true`) publishes
joint_states and imu/data as a driver does, stamped when the reading was taken: the observation's
time minus the drawn latency (and leaves that much time between episodes, so stamps never go
back). Other tasks stamp them with the observation's time (a latency the stamps do not show).
Everything else (privileged/state, sim/step, /clock) carries the observation's time.

Modes: `lockstep` publishes an observation and waits for the command answering it (then steps at
once: deterministic, faster than real time); `realtime` steps on the wall clock at the task's
control rate and holds the last command, as hardware does.
"""
from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import Twist
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray

from distill_ros.nodes import messages as m
from distill_ros.nodes.common import LATCHED, RELIABLE, RELIABLE_DEEP, SENSOR_DATA, FinishingNode, SubscriptionGate, run
from distill_ros.nodes.params import Param, ParameterError, declare
from distill_ros.observation import SensorMessageError
from distill_ros.sim import PRIVILEGED, SENSOR, DistillEnv
from distill_ros.stamps import NS_PER_S, stamp_ns
from distill_ros.velocity_command import DEFAULT_TIMEOUT_S, VelocityCommand

COMMAND_TYPES = ('Float64MultiArray', 'JointState')
SAMPLED, CMD_VEL = 'sampled', 'cmd_vel'
COMMAND_SOURCES = (SAMPLED, CMD_VEL)
STEP_FIELDS = ('reward', 'terminated', 'truncated', 'episode', 'step')

PARAMS = (
    Param('task', 'cartpole', 'task name from config/tasks/ or path of a task YAML'),
    Param('mode', 'lockstep', 'lockstep: wait for the command answering each observation; '
          'realtime: step on the wall clock, holding the last command', choices=('lockstep', 'realtime')),
    Param('seed', 0, 'seed of the first episode; episode i uses seed + i', low=0, high=2**31 - 1),
    Param('randomize', True, 'draw dynamics per episode from the task YAML (else their centre values)'),
    Param('sensor_noise', True, 'apply encoder and IMU noise, bias and quantization'),
    Param('sensor_latency', True, 'delay sensor readings by the task\'s latency_steps'),
    Param('command_type', 'Float64MultiArray', 'message type on the command topic', choices=COMMAND_TYPES),
    Param('command_source', SAMPLED, 'tasks with a velocity command: sampled, drawn per episode from the task '
          'ranges (as in training; recording, teacher runs); cmd_vel, the newest geometry_msgs/Twist on cmd_vel '
          '(linear.x, linear.y, angular.z; zero velocity without one), as a teleop or planner drives a robot',
          choices=COMMAND_SOURCES),
    Param('cmd_vel_timeout', DEFAULT_TIMEOUT_S, "command_source cmd_vel: seconds after the newest Twist before the "
          'command is zero velocity', low=0.01, high=60.0),
    Param('lockstep_timeout', 1.0, 'seconds to wait for a command in lockstep before warning and '
          're-publishing the observation', low=0.01, high=3600.0),
    Param('realtime_factor', 1.0, 'realtime mode: simulated seconds per wall-clock second', low=0.01, high=100.0),
    Param('max_episodes', 0, 'exit with status 0 after this many episodes (0: run forever)', low=0, high=2**31 - 1),
    Param('imu_frame_id', 'imu_link', 'frame_id of imu/data messages'),
    Param('publish_clock', True, 'publish simulation time on /clock'),
    Param('wait_for_subscribers', 0, 'hold the first episode until joint_states is matched with this many '
          'subscriptions (then 0.5 s for the other matches), so a real-time run loses no step to discovery',
          low=0, high=1000),
    Param('wait_for_privileged_subscribers', 0, 'also hold the first episode until privileged/state is matched '
          'with this many subscriptions (a teacher labelling states it does not drive, and the recorder)',
          low=0, high=1000),
)


class SimNode(FinishingNode):
    def __init__(self):
        super().__init__('sim_node')
        p = declare(self, PARAMS)
        self.params = p
        self.env = DistillEnv(p['task'], randomize=p['randomize'], sensor_noise=p['sensor_noise'],
                              latency=p['sensor_latency'])
        self.builder = self.env.sensor_builder
        self.privileged_names = self.env.privileged_spec.element_names()
        self.age_index = self.builder.sample_age_index   # None: sensors stamped with the observation's time
        self.step_names = [*STEP_FIELDS, *(['sample_age'] if self.age_index is not None else []),
                           *(f'action/{name}' for name in self.env.action_names)]
        self.dt_ns = round(self.env.dt * NS_PER_S)
        self.has_imu = self.env.task.has_imu
        self.velocity_command = None   # command_source cmd_vel: the newest Twist, zero after its timeout
        if p['command_source'] == CMD_VEL:
            if not self.env.task.command:
                raise ParameterError(f"parameter 'command_source' is cmd_vel, but task {self.env.task.name} has no "
                                     f'velocity command (no `command` in {self.env.task.source}); expected sampled')
            self.velocity_command = VelocityCommand(p['cmd_vel_timeout'])

        self.joint_pub = self.create_publisher(JointState, 'joint_states', RELIABLE_DEEP)
        self.imu_pub = self.create_publisher(Imu, 'imu/data', RELIABLE_DEEP) if self.has_imu else None
        self.privileged_pub = self.create_publisher(JointState, 'privileged/state', RELIABLE_DEEP)
        self.step_pub = self.create_publisher(JointState, 'sim/step', RELIABLE_DEEP)
        self.episode_pub = self.create_publisher(JointState, 'sim/episode', LATCHED)
        self.clock_pub = self.create_publisher(Clock, '/clock', RELIABLE_DEEP) if p['publish_clock'] else None
        if p['command_type'] == 'JointState':
            self.create_subscription(JointState, 'commands', self.on_joint_command, RELIABLE)
        else:
            self.create_subscription(Float64MultiArray, 'commands', self.on_array_command, RELIABLE)
        if self.velocity_command is not None:
            # Best effort matches teleop's and Nav2's reliable publishers too; only the newest counts.
            self.create_subscription(Twist, 'cmd_vel', self.on_cmd_vel, SENSOR_DATA)

        self.now_ns = 0           # simulation time of the current observation
        self.sample_ns = 0        # when its sensor sample was taken (now_ns minus the sample age)
        self.episode = 0
        self.command = np.zeros(self.env.action_space.shape)
        self.obs: dict[str, np.ndarray] = {}
        self.published_at = 0.0   # wall time the current observation went out (lockstep timeout)
        self.warned_stale = 0
        self.gate = SubscriptionGate(self.joint_pub, p['wait_for_subscribers'],
                                     more=((self.privileged_pub, p['wait_for_privileged_subscribers']),))
        if self.gate.is_open:
            self.begin()
        else:
            self.wait_timer = self.create_timer(0.05, self.check_subscribers)
        self.get_logger().info(
            f"task {self.env.task.name} in {p['mode']} mode at {1 / self.env.dt:.0f} Hz, seed {p['seed']}; "
            f"actions {self.env.action_names} on 'commands' ({p['command_type']})"
            + (f"; velocity command from {self.resolve_topic_name('cmd_vel')}" if self.velocity_command else ''))

    def check_subscribers(self) -> None:
        if self.gate.check():
            self.wait_timer.cancel()
            self.begin()

    def begin(self) -> None:
        self.start_episode()
        if self.params['mode'] == 'lockstep':
            self.create_timer(self.params['lockstep_timeout'], self.check_lockstep_timeout)
        else:
            self.create_timer(self.env.dt / self.params['realtime_factor'], self.realtime_tick)

    # ------------------------------------------------------------------ episodes
    def start_episode(self) -> None:
        seed = self.params['seed'] + self.episode
        options = None if self.velocity_command is None else {'command': self.cmd_vel_now()}
        if self.age_index is not None:
            # the reset takes the longest latency: the new episode's (older) samples come after the last one
            self.now_ns += self.env.task.latency_steps[1] * self.dt_ns
        self.obs, info = self.env.reset(seed=seed, options=options)
        names = ['episode', 'seed', 'latency_steps'] + [f'dynamics/{k}' for k in info['dynamics']]
        values = [self.episode, seed, info['latency_steps'], *info['dynamics'].values()]
        first_sample_ns = self.now_ns - self.sample_age_ns()
        self.episode_pub.publish(m.named_vector(names, values, first_sample_ns, self.env.task.name))
        self.publish_observation()

    def sample_age_ns(self) -> int:
        """How old the current observation's sensor sample is (0 for a task without the sample age)."""
        return 0 if self.age_index is None else round(float(self.obs[SENSOR][self.age_index]) * NS_PER_S)

    def publish_observation(self) -> None:
        ns = self.now_ns
        self.sample_ns = sample_ns = ns - self.sample_age_ns()
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=m.stamp(ns)))
        reading = self.builder.reading(self.obs[SENSOR])
        self.joint_pub.publish(m.joint_state(reading, sample_ns))
        if self.imu_pub is not None:
            self.imu_pub.publish(m.imu(reading, sample_ns, self.params['imu_frame_id']))
        self.privileged_pub.publish(m.named_vector(self.privileged_names, self.obs[PRIVILEGED], ns))
        self.published_at = time.monotonic()

    def advance(self, action: np.ndarray) -> None:
        """Step with `action`, report the transition, and publish the next observation."""
        if self.velocity_command is not None:
            self.env.set_command(*self.cmd_vel_now())
        age = [] if self.age_index is None else [self.obs[SENSOR][self.age_index]]  # the answered sample's
        self.obs, reward, terminated, truncated, _ = self.env.step(action)
        values = [reward, terminated, truncated, self.episode, self.env.elapsed_steps - 1, *age, *action]
        self.step_pub.publish(m.named_vector(self.step_names, values, self.now_ns, self.env.task.name))
        self.now_ns += self.dt_ns
        if terminated or truncated:
            self.episode += 1
            if self.params['max_episodes'] and self.episode >= self.params['max_episodes']:
                self.get_logger().info(f'{self.episode} episodes done; exiting')
                self.finish(0)
                return
            self.start_episode()
        else:
            self.publish_observation()

    # ------------------------------------------------------------------ commands
    def valid(self, values: np.ndarray, topic: str) -> bool:
        # As forward_command_controller: refuse a wrong length or a non-finite value, keep the last.
        expected = self.env.action_space.shape[0]
        if values.shape != (expected,):
            self.get_logger().error(f'{topic}: command has {values.size} values, expected {expected} '
                                    f'for joints {self.env.action_names}; ignored', throttle_duration_sec=1.0)
            return False
        if not np.all(np.isfinite(values)):
            self.get_logger().error(f'{topic}: command contains NaN or Inf {values.tolist()}; ignored',
                                    throttle_duration_sec=1.0)
            return False
        return True

    def on_array_command(self, msg: Float64MultiArray) -> None:
        values = np.asarray(msg.data, dtype=np.float64)
        if self.valid(values, 'commands'):
            self.receive(values)

    def on_joint_command(self, msg: JointState) -> None:
        # the command names the observation it answers by its time (the teacher, from privileged/state)
        # or by its sensor sample's stamp (the student controller); the two differ by the sample age
        if self.params['mode'] == 'lockstep' and stamp_ns(msg.header.stamp) not in (self.now_ns, self.sample_ns):
            self.warned_stale += 1  # answers an earlier observation (e.g. after a re-publish)
            return
        try:
            values = m.read_named_vector(msg, self.env.action_names, 'commands')
        except SensorMessageError as exc:
            self.get_logger().error(f'{exc}; ignored', throttle_duration_sec=1.0)
            return
        if self.valid(values, 'commands'):
            self.receive(values)

    def on_cmd_vel(self, msg: Twist) -> None:
        try:
            self.velocity_command.set(m.twist_command(msg), time.monotonic_ns())
        except ValueError as exc:
            self.get_logger().error(f'{self.resolve_topic_name("cmd_vel")}: {exc}; ignored', throttle_duration_sec=1.0)

    def cmd_vel_now(self) -> np.ndarray:
        """The command in force: the newest Twist, or zero velocity once it is older than cmd_vel_timeout
        (wall-clock arrival, as on the robot, whatever the simulation's speed)."""
        return self.velocity_command.value(time.monotonic_ns())

    def receive(self, values: np.ndarray) -> None:
        if not self.obs:
            return  # before the first episode (wait_for_subscribers): nothing to answer yet
        self.command = values
        if self.params['mode'] == 'lockstep':
            self.advance(values)

    # ------------------------------------------------------------------ timers
    def check_lockstep_timeout(self) -> None:
        waited = time.monotonic() - self.published_at
        if waited >= self.params['lockstep_timeout']:
            self.get_logger().warning(
                f'lockstep: no command on {self.resolve_topic_name("commands")} answering the observation '
                f'stamped {self.sample_ns / NS_PER_S:.3f} s after {waited:.1f} s; re-publishing it '
                f'(is a controller running?)', throttle_duration_sec=5.0)
            self.publish_observation()

    def realtime_tick(self) -> None:
        self.advance(self.command)

    def close(self) -> None:
        self.env.close()


def main(args: list[str] | None = None) -> None:
    raise SystemExit(run(SimNode, args))


if __name__ == '__main__':
    main()
