"""student_controller_node: runs a distilled student on plain sensor topics under real-time control.

A lifecycle node; it commands nothing until activated:
  configure   load the checkpoint, build and verify the inference backend, warm it up, check the
              command joints and (within sensor_check_timeout) that joint_states has every joint
              the policy reads; any problem fails the transition with a message naming it
  activate    start the control loop (a dedicated thread on absolute deadlines)
  deactivate  stop it, after sending the safe action once
With `auto_activate` it configures and activates itself at start (launch files, tests); a failed
configure then ends the process with status 2. `<node>/change_state` works as for any lifecycle node.

Subscribes (sensor-data QoS; joints mapped by name, never by index):
  joint_states   sensor_msgs/JointState     (a student that reads the sample age takes the node's clock
                                            minus header.stamp when the sample is used: the stamp must be
                                            when the joints were read, in the clock's time; use_sim_time
                                            under a simulator)
  imu/data       sensor_msgs/Imu            when the policy reads the IMU
  estop          std_msgs/Bool              true latches the safe action
  estop_reset    std_msgs/Bool              true clears the latch (so does re-activation)
  cmd_vel        geometry_msgs/Twist        when the student's observation has a velocity command
                                            (a locomotion task; subscribed at configure): linear.x,
                                            linear.y, angular.z; zero velocity when none has come
                                            for cmd_vel_timeout
Publishes:
  commands       std_msgs/Float64MultiArray in `command_joints` order (forward_command_controller):
                 efforts (the action), or with command_interface position joint position targets
  joint_commands sensor_msgs/JointState     optional: names, values, and the stamp of the sensor
                                            sample the command answers
  /diagnostics   diagnostic_msgs/DiagnosticArray  loop rate, jitter, misses, latency, inference,
                                            watchdog and e-stop state (and sample_age_ms)
"""
from __future__ import annotations

import signal
import sys
import time
import traceback

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.wait_for_message import wait_for_message
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool, Float64MultiArray

from distill_ros.control.controller import POLICY, REPEAT, SAFE, StudentController
from distill_ros.control.inference import BACKENDS, BackendError, load_backend
from distill_ros.control.safety import SAFE_ACTIONS, SafetyFilter, Watchdog
from distill_ros.control.timing import LoopStats, RealtimeLoop, fifo_other_threads, restore_normal_scheduling
from distill_ros.nodes import messages as m
from distill_ros.nodes.common import LATCHED, RELIABLE, REPEATED_SIGINT_S, SENSOR_DATA, FinishingNode, run
from distill_ros.nodes.params import Param, ParameterError, declare
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.sim.actuation import PositionActuation, position_command, position_from_record
from distill_ros.sim.env import policy_rate_hz
from distill_ros.sim.task import TaskConfigError
from distill_ros.stamps import NS_PER_S, stamp_ns
from distill_ros.students import student_path
from distill_ros.velocity_command import DEFAULT_TIMEOUT_S

TRIGGERS = ('timer', 'sensor')
EFFORT, POSITION = 'effort', 'position'

PARAMS = (
    Param('checkpoint', 'cartpole', 'student checkpoint folder, or the name of a student shipped in '
          'distill_ros/students/'),
    Param('backend', 'auto', 'inference backend; auto: numpy for MLP students, onnxruntime otherwise',
          choices=BACKENDS),
    Param('control_rate_hz', 0.0, "control loop rate; 0: the rate the student was trained at (its task's policy "
          'rate, e.g. hopper 125 Hz); another value is used as given, with a warning when it differs',
          low=0.0, high=2000.0),
    Param('trigger', 'timer', "timer: run the policy on the loop's deadlines on the newest sample; sensor: run "
          'it as soon as a complete new sample arrives (lowest latency; the loop then only watches)',
          choices=TRIGGERS),
    Param('safe_action', 'zero', 'command sent when sensors are stale, on e-stop and before the first sample: '
          'zero, or hold the last command', choices=SAFE_ACTIONS),
    Param('sensor_timeout', 0.1, 'seconds without a valid sensor sample before the watchdog sends the safe action',
          low=0.001, high=60.0),
    Param('watchdog_latch', False, 'after a watchdog trip, resume only after re-activation (else as soon as '
          'fresh data returns)'),
    Param('action_limit', 0.0, 'clip commands to +-this as well as to the checkpoint limits (0: checkpoint limits)',
          low=0.0, high=1e9),
    Param('max_rate', 0.0, 'rate limit per joint in command units per second (0: none)', low=0.0, high=1e9),
    Param('command_interface', EFFORT, 'what commands carries: effort, the policy action as it is (an effort '
          'forward_command_controller); position, joint targets default_pose + action_scale * action from the '
          "checkpoint task's position actuation (a position forward_command_controller; the zero safe action is "
          'then the default pose)', choices=(EFFORT, POSITION)),
    Param('cmd_vel_timeout', DEFAULT_TIMEOUT_S, 'students that follow a velocity command: seconds after the newest '
          'cmd_vel (geometry_msgs/Twist) before the command is zero velocity (a silent teleop or planner stops the '
          'robot)', low=0.01, high=60.0),
    Param('publish_joint_commands', False, 'also publish commands as a stamped JointState on joint_commands'),
    Param('episode_topic', '', "simulation: sim_node's episode announcements (e.g. sim/episode); each new "
          'episode starts a fresh history window (and a recurrent student\'s zero state), as in training '
          '(empty: none, as on a robot)'),
    Param('auto_activate', False, 'configure and activate at start, without a lifecycle manager'),
    Param('sensor_check_timeout', 5.0, 'configure: seconds to wait for a joint_states message to check its '
          'joint names (0: do not wait; names are then checked on every message)', low=0.0, high=600.0),
    Param('sched_fifo', False, 'ask for SCHED_FIFO on the control thread and, one priority lower, the DDS and '
          'executor threads (falls back with a warning)'),
    Param('sched_priority', 80, 'SCHED_FIFO priority', low=1, high=99),
    Param('busy_wait_us', 200, 'busy-wait this long before each deadline instead of sleeping', low=0, high=100000),
    Param('miss_tolerance_ms', 1.0, 'a tick starting later than this after its deadline is a deadline miss',
          low=0.0, high=10000.0),
    Param('stats_window', 4096, 'ticks over which percentiles are reported', low=16, high=1_000_000),
    Param('diagnostics_period', 1.0, 'seconds between /diagnostics reports', low=0.05, high=60.0),
    Param('inference_threads', 1, 'threads of the inference backend', low=1, high=64),
)

def resolve_checkpoint(value: str) -> str:
    """A folder as given, or the student shipped under that name (distill_ros/students/<name>)."""
    return str(student_path(value))


class StudentControllerNode(FinishingNode, LifecycleNode):
    """A lifecycle node that can end its own process (`finish`, for auto_activate and Ctrl-C)."""

    def __init__(self):
        super().__init__('student_controller_node')
        self.controller: StudentController | None = None
        self.position: PositionActuation | None = None   # command_interface position: action -> joint targets
        self.cmd_vel_sub = None   # made at configure, for a student that follows a velocity command
        self.loop: RealtimeLoop | None = None
        self.active = False
        self.fifo_threads: list[int] = []
        self.params = declare(self, PARAMS)
        self.declare_parameter('command_joints', Parameter.Type.STRING_ARRAY, ParameterDescriptor(
            description="joint order of the commands (forward_command_controller's joints); unset: the "
                        "checkpoint's action order", read_only=True))
        self.rate_hz = 0.0   # the control rate in use, set at configure (control_rate)
        self.stats = LoopStats(window=self.params['stats_window'],
                               miss_tolerance_s=self.params['miss_tolerance_ms'] / 1000.0)
        self.last_reason = ''
        self.episode_start_ns: int | None = None
        self.errors = 0
        self.sent = 0
        self.safe_sent = 0
        self.fifo_message = 'SCHED_FIFO not requested'

        self.command_pub = self.create_publisher(Float64MultiArray, 'commands', RELIABLE)
        self.joint_command_pub = (self.create_publisher(JointState, 'joint_commands', RELIABLE)
                                  if self.params['publish_joint_commands'] else None)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, m.DIAGNOSTICS, RELIABLE)
        if self.params['episode_topic']:   # before joint_states: handled first when both are ready
            self.create_subscription(JointState, self.params['episode_topic'], self.on_episode, LATCHED)
        self.create_subscription(JointState, 'joint_states', self.on_joint_states, SENSOR_DATA)
        self.create_subscription(Imu, 'imu/data', self.on_imu, SENSOR_DATA)
        self.create_subscription(Bool, 'estop', self.on_estop, RELIABLE)
        self.create_subscription(Bool, 'estop_reset', self.on_estop_reset, RELIABLE)
        # on the steady clock: they run before a simulator's first /clock under use_sim_time (a
        # simulator that waits for this node's subscriptions would otherwise wait forever)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.system_clock = Clock(clock_type=ClockType.SYSTEM_TIME)
        self.create_timer(self.params['diagnostics_period'], self.publish_diagnostics, clock=steady)
        if self.params['auto_activate']:
            self._auto = self.create_timer(0.0, self.auto_activate, clock=steady)
        # rclpy's own Ctrl-C handler invalidates the context before any Python code runs, so the
        # final safe action could not be sent; this one stops the loop, sends it, then ends the spin.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.on_signal)
        self.get_logger().info(f"student controller waiting to be configured (checkpoint {self.params['checkpoint']}"
                               f"{', auto_activate' if self.params['auto_activate'] else ''})")

    def on_signal(self, signum: int, frame) -> None:
        signalled_at = getattr(self, 'signalled_at', None)
        if signalled_at is not None:  # also while the first is still being handled
            if time.monotonic() - signalled_at > REPEATED_SIGINT_S:
                raise KeyboardInterrupt  # a second Ctrl-C while finishing
            return  # the same Ctrl-C, from the terminal and from ros2 launch
        self.signalled_at = time.monotonic()
        self.get_logger().info(f'{signal.Signals(signum).name}: sending the safe action and exiting')
        self.stop_loop(final_command=True)
        self.finish(0)

    # ------------------------------------------------------------------ lifecycle
    def auto_activate(self) -> None:
        self._auto.cancel()
        if self.finished.done():  # stopped before it started
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error('configure failed (see above); exiting with status 2')
            self.finish(2)
            return
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error('activate failed (see above); exiting with status 2')
            self.finish(2)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.controller = self.build_controller()
        except (ckpt_io.CheckpointError, BackendError, ParameterError, ValueError) as exc:
            self.get_logger().error(f'configure failed: {exc}')
            self.controller = None
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # noqa: BLE001 - reported, and the node stays unconfigured
            self.get_logger().error(f'configure failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}')
            self.controller = None
            return TransitionCallbackReturn.FAILURE
        if self.controller.velocity_command is not None and self.cmd_vel_sub is None:
            # Best effort matches teleop's and Nav2's reliable publishers too; only the newest counts.
            self.cmd_vel_sub = self.create_subscription(Twist, 'cmd_vel', self.on_cmd_vel, SENSOR_DATA)
        return TransitionCallbackReturn.SUCCESS

    def build_controller(self) -> StudentController:
        p = self.params
        try:
            path = resolve_checkpoint(p['checkpoint'])
            ckpt = ckpt_io.load(path)
        except ckpt_io.CheckpointError as exc:
            raise ParameterError(f"parameter 'checkpoint': {exc}") from None
        if ckpt.obs_source != 'sensor':
            raise ParameterError(f"parameter 'checkpoint': {path} reads {ckpt.obs_source} observations; the "
                                 f'student controller runs policies on sensor observations (a distilled student)')
        low, high = ckpt.action_low.copy(), ckpt.action_high.copy()
        if p['action_limit'] > 0:
            low, high = np.maximum(low, -p['action_limit']), np.minimum(high, p['action_limit'])
        safety = SafetyFilter(low, high, p['max_rate'] if p['max_rate'] > 0 else np.inf, p['safe_action'])
        start = time.perf_counter()
        try:
            backend = load_backend(ckpt, p['backend'], threads=p['inference_threads'])
        except BackendError as exc:
            raise ParameterError(f"parameter 'backend': {exc}") from None
        joints = self.get_parameter_or('command_joints', None)
        joints = joints.value if joints is not None and joints.type_ != Parameter.Type.NOT_SET else None
        self.rate_hz = self.control_rate(ckpt, path)
        try:
            controller = StudentController(ckpt, backend, safety, Watchdog(p['sensor_timeout'], p['watchdog_latch']),
                                           self.stats, 1.0 / self.rate_hz, joints,
                                           {'joints': self.resolve_topic_name('joint_states'),
                                            'imu': self.resolve_topic_name('imu/data'),
                                            'command': self.resolve_topic_name('cmd_vel')},
                                           p['cmd_vel_timeout'], clock_ns=lambda: self.get_clock().now().nanoseconds)
        except ValueError as exc:
            raise ParameterError(f"parameter 'command_joints': {exc}") from None
        self.position = None
        if p['command_interface'] == POSITION:
            try:
                # the checkpoint's own record first: a robot needs no task YAML and no simulator
                self.position = (position_from_record(ckpt.deployment, controller.command_joints, str(path))
                                 if ckpt.deployment and 'actuation' in ckpt.deployment
                                 else position_command(ckpt.load_task(), controller.command_joints))
            except TaskConfigError as exc:
                raise ParameterError(f"parameter 'command_interface' position: checkpoint {path}: {exc}") from None
        if p['sensor_check_timeout'] > 0:
            topic = self.resolve_topic_name('joint_states')
            ok, msg = wait_for_message(JointState, self, 'joint_states', qos_profile=SENSOR_DATA,
                                       time_to_wait=p['sensor_check_timeout'])
            if not ok:
                raise ValueError(f'no message on {topic} within sensor_check_timeout '
                                 f"({p['sensor_check_timeout']} s); is the robot driver running? (set "
                                 f'sensor_check_timeout 0 to configure without checking)')
            missing = controller.check_joints(msg.name)
            if missing:
                raise ValueError(f'{topic} lacks joints {missing} that the student reads; it has {list(msg.name)}, '
                                 f'the checkpoint expects {list(controller.builder.joints)}')
        self.get_logger().info(
            f'configured: {path} ({type(ckpt.model).__name__}, history {ckpt.history}), backend {backend.name} '
            f'verified and warmed up in {time.perf_counter() - start:.2f} s; reads {controller.builder.spec!r}; '
            f'commands {controller.command_joints} at {self.rate_hz:g} Hz ({p["trigger"]} trigger)'
            + (f'; follows the velocity command on {self.resolve_topic_name("cmd_vel")} (zero after '
               f'{p["cmd_vel_timeout"]:g} s without one)' if controller.velocity_command is not None else ''))
        return controller

    def control_rate(self, ckpt: ckpt_io.Checkpoint, path) -> float:
        """control_rate_hz, or with 0 the checkpoint's task's policy rate; a warning when a given rate
        differs from the task's (a student run at another rate than it was trained at falls)."""
        given = self.params['control_rate_hz']
        try:
            trained = float(ckpt.deployment['policy_rate_hz']) if ckpt.deployment else policy_rate_hz(ckpt.load_task())
        except (TaskConfigError, OSError, ValueError) as exc:
            if given > 0:
                return given
            raise ParameterError(f"parameter 'control_rate_hz' is 0 (the student's training rate), but checkpoint "
                                 f"{path}'s task {ckpt.task!r} cannot be loaded to read it: {exc}; set "
                                 f'control_rate_hz to the rate the student was trained at') from None
        if given > 0 and abs(given - trained) > 0.01 * trained:
            self.get_logger().warning(
                f'control_rate_hz {given:g} differs from the {trained:g} Hz that {path} was trained at (task '
                f'{ckpt.task!r}); the student will act at another rate than it learnt (set control_rate_hz 0 for '
                f'the trained rate; in simulation faster than real time, the trained rate x realtime_factor)')
        return given if given > 0 else trained

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.params
        period = 1.0 / self.rate_hz
        sensor_trigger = p['trigger'] == 'sensor'
        # Bound how long one thread holds the GIL (default 5 ms) so the control thread, or the
        # executor thread running sensor-triggered ticks, waits at most a fraction of a period.
        sys.setswitchinterval(min(sys.getswitchinterval(), period / 10))
        self.controller.activate(time.monotonic_ns())
        if self.episode_start_ns is not None:
            self.controller.episode_started(self.episode_start_ns)
        self.errors = 0
        # With trigger 'sensor' the loop only watches the sensors: it sleeps instead of busy-waiting,
        # which would hold the GIL the executor thread needs for the tick.
        self.loop = RealtimeLoop(period, self.loop_tick, self.stats,
                                 busy_wait_s=0.0 if sensor_trigger else p['busy_wait_us'] / 1e6,
                                 fifo_priority=p['sched_priority'] if p['sched_fifo'] else 0)
        self.active = True
        self.loop.start()
        self.fifo_message = self.loop.fifo_message
        if p['sched_fifo'] and self.loop.fifo_granted:
            # The DDS receive threads and the executor thread (which runs sensor-triggered ticks) are
            # on the sensor-to-command path too: one priority below the loop thread.
            self.fifo_threads, message = fifo_other_threads(max(1, p['sched_priority'] - 1), {self.loop.native_id})
            self.fifo_message = f'{self.loop.fifo_message}; {message}'
        if p['sched_fifo']:
            log = self.get_logger().info if self.loop.fifo_granted else self.get_logger().warning
            log(f'control thread: {self.fifo_message}')
        self.get_logger().info(f'active: commanding {self.resolve_topic_name("commands")}')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_loop(final_command=True)
        self.get_logger().info(f'inactive: stopped commanding ({self.summary()})')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.controller = None
        if self.cmd_vel_sub is not None:
            self.destroy_subscription(self.cmd_vel_sub)
            self.cmd_vel_sub = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_loop(final_command=True)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_loop(final_command=True)
        return TransitionCallbackReturn.SUCCESS

    def stop_loop(self, final_command: bool) -> None:
        was_active, self.active = self.active, False
        if self.loop is not None:
            self.loop.stop()
            self.loop = None
        if self.fifo_threads:
            restore_normal_scheduling(self.fifo_threads)
            self.fifo_threads = []
        if was_active and final_command and self.controller is not None:
            # A clean stop leaves the actuators with the safe action, not the last policy output.
            try:
                self.publish(self.controller.safe('deactivated'), time.monotonic_ns())
                # Before the process exits, or the writer is destroyed with the sample unsent.
                self.command_pub.wait_for_all_acked(Duration(seconds=0.5))
            except Exception as exc:  # noqa: BLE001 - the context may already be shut down (Ctrl-C)
                print(f'[student_controller_node] could not send the final safe action: {exc}', file=sys.stderr,
                      flush=True)

    def close(self) -> None:
        self.stop_loop(final_command=True)

    def destroy_node(self) -> None:
        # Whoever destroys the node (run's cleanup, a context shutdown) stops the loop first.
        self.stop_loop(final_command=True)
        super().destroy_node()

    # ------------------------------------------------------------------ sensors and e-stop
    def on_joint_states(self, msg: JointState) -> None:
        self.on_sensor(joints=msg)

    def on_imu(self, msg: Imu) -> None:
        self.on_sensor(imu=msg)

    def on_sensor(self, joints: JointState | None = None, imu: Imu | None = None) -> None:
        """A sensor message for the controller; with trigger 'sensor', a complete new sample runs the
        policy at once."""
        controller = self.controller
        if controller is None or not self.active or (imu is not None and not controller.needs_imu):
            return
        controller.sensors(joints=joints, imu=imu)
        if self.params['trigger'] == 'sensor' and controller.sample_ready():
            self.run_tick(time.monotonic_ns(), True)

    def on_cmd_vel(self, msg: Twist) -> None:
        controller = self.controller
        if controller is None:
            return
        try:
            controller.set_velocity_command(m.twist_command(msg))
        except ValueError as exc:
            self.get_logger().error(f'{self.resolve_topic_name("cmd_vel")}: {exc}; ignored', throttle_duration_sec=1.0)

    def on_episode(self, msg: JointState) -> None:
        self.episode_start_ns = stamp_ns(msg.header.stamp)
        if self.controller is not None:
            self.controller.episode_started(self.episode_start_ns)

    def on_estop(self, msg: Bool) -> None:
        if msg.data and self.controller is not None and not self.controller.estop.latched:
            self.controller.estop.trip()
            self.get_logger().error('e-stop: sending the safe action until estop_reset or re-activation')
            if self.active:
                self.run_tick(time.monotonic_ns(), False)
            self.publish_diagnostics()

    def on_estop_reset(self, msg: Bool) -> None:
        if msg.data and self.controller is not None and self.controller.estop.latched:
            self.controller.estop.reset()
            self.get_logger().warning('e-stop reset: the policy commands again')
            self.publish_diagnostics()

    # ------------------------------------------------------------------ the loop
    def loop_tick(self, deadline_ns: int, start_ns: int) -> None:
        self.run_tick(start_ns, self.params['trigger'] == 'timer')

    def run_tick(self, now_ns: int, infer: bool) -> None:
        if not self.active:
            return
        try:
            tick = self.controller.tick(now_ns, infer)
            if tick is not None:
                self.publish(tick, now_ns)
        except Exception as exc:  # noqa: BLE001 - the actuators get the safe action, the log the reason
            if not self.context.ok():  # shutting down: nothing can be published any more
                self.active = False
                return
            self.errors += 1
            self.get_logger().error(f'control tick failed: {type(exc).__name__}: {exc}; sending the safe action\n'
                                    f'{traceback.format_exc()}', throttle_duration_sec=1.0)
            try:
                self.publish(self.controller.safe('error'), now_ns)
            except Exception:  # noqa: BLE001
                pass

    def publish(self, tick, now_ns: int) -> None:
        data = (tick.command if self.position is None else self.position.targets(tick.command)).tolist()
        self.command_pub.publish(Float64MultiArray(data=data))
        if tick.source == POLICY:
            self.stats.latency.add((time.monotonic_ns() - tick.sample_arrival_ns) / NS_PER_S)
        if self.joint_command_pub is not None:
            msg = JointState(name=self.controller.command_joints, position=data)
            if tick.sample_header is not None:
                msg.header.stamp = tick.sample_header.stamp
            else:  # answers no sample: system time, which never names a simulator's observation
                msg.header.stamp = self.system_clock.now().to_msg()
            self.joint_command_pub.publish(msg)
        self.sent += 1
        if tick.source == SAFE:
            self.safe_sent += 1
        reason = tick.reason if tick.source == SAFE else ''
        if reason != self.last_reason and tick.source != REPEAT:
            previous, self.last_reason = self.last_reason, reason
            if reason in ('stale', 'latched'):
                self.get_logger().error(f'watchdog: no valid sensor sample for {self.params["sensor_timeout"]} s '
                                        f'({self.controller.fault(time.monotonic_ns()) or "sensors silent"}); '
                                        f'sending the safe action')
            elif reason == 'nonfinite':
                self.get_logger().error('policy output NaN or Inf; sending the safe action',
                                        throttle_duration_sec=1.0)
            elif not reason and previous in ('stale', 'latched', 'waiting'):
                self.get_logger().info('fresh sensor data: the policy commands again')
            if reason in ('stale', 'latched', 'nonfinite', '') and previous != 'deactivated':
                self.publish_diagnostics()

    # ------------------------------------------------------------------ diagnostics
    def state_label(self) -> str:
        return self._state_machine.current_state[1]

    def summary(self) -> str:
        s = self.stats
        return (f'{s.ticks} ticks, {s.deadline_misses} deadline misses, jitter p99 {s.jitter_p99() * 1e6:.0f} us, '
                f'inference p99 {s.inference.percentile(99) * 1e6:.0f} us, '
                f'latency p99 {s.latency.percentile(99) * 1e6:.0f} us')

    def status(self) -> tuple[str, str]:
        c = self.controller
        if c is None or not self.active:
            return 'ok', f'{self.state_label()}: not commanding'
        if c.estop.latched:
            return 'error', 'e-stop latched: safe action'
        state = c.watchdog.state
        now = time.monotonic_ns()
        if state == 'stale':
            why = c.fault(now) or 'silent'
            return 'error', f'sensors stale > {self.params["sensor_timeout"]} s: safe action ({why})'
        if state == 'latched':
            return 'error', 'watchdog tripped; fresh data again, waiting for re-activation: safe action'
        if state == 'waiting':
            return 'warn', 'active, waiting for the first valid sensor sample: safe action'
        if self.errors:
            return 'warn', f'{self.errors} control ticks failed'
        if c.last_bad_ns is not None and now - c.last_bad_ns < self.params['diagnostics_period'] * NS_PER_S:
            return 'warn', f'bad sensor samples dropped ({c.bad_samples} in all): {c.last_error}'
        return 'ok', 'active: policy commanding'

    def command_diagnostics(self, c: StudentController) -> dict[str, str]:
        """The velocity command in the newest observation and where it stands on cmd_vel."""
        observed = c.observed_command
        now = time.monotonic_ns()
        age = c.velocity_command.age_s(now)
        if age is None:
            source = 'none received: zero velocity'
        elif c.velocity_command.timed_out(now):
            source = f'timed out ({age:.2f} s > {self.params["cmd_vel_timeout"]:g} s): zero velocity'
        else:
            source = f'{age:.2f} s old'
        return {'command': '' if observed is None else ' '.join(f'{v:.4f}' for v in observed), 'cmd_vel': source}

    def publish_diagnostics(self) -> None:
        level, message = self.status()
        s, c = self.stats, self.controller
        values = {
            'lifecycle_state': self.state_label(),
            'watchdog': c.watchdog.state if c else 'n/a',
            'estop': str(bool(c and c.estop.latched)).lower(),
            'loop_rate_hz': f'{s.rate_hz():.2f}' if self.active else '0',
            'target_rate_hz': f'{self.rate_hz:g}' if self.rate_hz else 'n/a',
            'trigger': self.params['trigger'],
            'ticks': str(s.ticks),
            'jitter_p99_us': f'{s.jitter_p99() * 1e6:.1f}',
            'jitter_max_us': f'{s.max_period_error * 1e6:.1f}',
            'lateness_p99_us': f'{s.lateness.percentile(99) * 1e6:.1f}',
            'lateness_max_us': f'{s.max_lateness * 1e6:.1f}',
            'deadline_misses': str(s.deadline_misses),
            'skipped_deadlines': str(s.skipped),
            'latency_p50_us': f'{s.latency.percentile(50) * 1e6:.1f}',
            'latency_p99_us': f'{s.latency.percentile(99) * 1e6:.1f}',
            'latency_max_us': f'{s.latency.max() * 1e6:.1f}',
            'inference_p50_us': f'{s.inference.percentile(50) * 1e6:.1f}',
            'inference_p99_us': f'{s.inference.percentile(99) * 1e6:.1f}',
            'backend': c.backend.name if c else self.params['backend'],
            'sched_fifo': self.fifo_message,
            'commands_sent': str(self.sent),
            'safe_commands_sent': str(self.safe_sent),
            'bad_samples': str(c.bad_samples if c else 0),
            'watchdog_trips': str(c.watchdog.trips if c else 0),
            'last_error': c.last_error if c else '',
            'fault': (c.fault(time.monotonic_ns()) if self.active else '') if c else '',
        }
        if c is not None and c.velocity_command is not None:
            values.update(self.command_diagnostics(c))
        if c is not None and c.builder.has_sample_age:   # the newest good observation's sample age
            values['sample_age_ms'] = f'{c.obs[c.builder.sample_age_index] * 1e3:.3f}' if c.last_good_ns else 'n/a'
        self.diagnostics_pub.publish(m.diagnostics(
            self.get_clock().now().to_msg(), f'{self.get_fully_qualified_name()}: control loop', level, message,
            self.params['checkpoint'], values))


def main(args: list[str] | None = None) -> None:
    raise SystemExit(run(StudentControllerNode, args))


if __name__ == '__main__':
    main()
