"""The student controller's tick without ROS: newest sensors -> observation -> history window ->
policy -> safety -> command, with the watchdog and the e-stop in front.

The node (distill_ros.nodes.student_controller_node) feeds `sensors()` from its subscriptions
and calls `tick()` from the real-time loop thread (or on each new sample with trigger 'sensor');
everything that decides what reaches the actuators is here, testable without a ROS graph.

The observation is built by the same `SensorObsBuilder` and stacked by the same `HistoryBuffer`
as in training, from the checkpoint's stored observation spec, so term order, joint order and
history layout cannot differ between training and deployment. A student whose observation ends
with a velocity command (a locomotion task) reads it from `set_velocity_command` (the node's
`cmd_vel`), zero once older than its timeout (`VelocityCommand`). One whose observation ends with
the sample age (`sensors.sample_age`) reads it as the clock's now minus the joint_states stamp, when
the sample goes into the policy: the node's ROS clock (/clock under use_sim_time), whose time the
drivers' stamps are in.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from distill_ros.control.inference import Backend
from distill_ros.control.safety import EStop, SafetyFilter, Watchdog
from distill_ros.control.timing import LoopStats
from distill_ros.observation import SAMPLE_AGE, SensorMessageError, SensorMismatch, SensorObsBuilder
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.stamps import NS_PER_S, stamp_ns, stamp_text
from distill_ros.velocity_command import DEFAULT_TIMEOUT_S, VelocityCommand

# What a tick did, in `Tick.source`.
POLICY = 'policy'          # a fresh sample went through the policy
REPEAT = 'repeat'          # no new sample since the last tick: the last command again
SAFE = 'safe'              # the safe action; `Tick.reason` says why

# A sample age outside [-MAX_CLOCK_SKEW_S, MAX_SAMPLE_AGE_S] means the stamps and the clock disagree
# (sim time against wall time, unsynchronized computers): the sample is refused, not fed to the policy.
# Within the skew a negative age counts as 0.
MAX_SAMPLE_AGE_S = 1.0
MAX_CLOCK_SKEW_S = 0.005


@dataclass
class Tick:
    command: np.ndarray            # in the command joint order
    source: str                    # POLICY, REPEAT or SAFE
    reason: str = ''               # for SAFE: estop, waiting, stale, latched, nonfinite
    sample_arrival_ns: int = 0     # monotonic arrival of the newest sensor message used (POLICY)
    sample_header: object = None    # header of the joint_states message used (POLICY, REPEAT)


def command_order(action_names: Sequence[str], command_joints: Sequence[str] | None) -> np.ndarray:
    """Index array taking a vector in the policy's action order to `command_joints` order.
    Refuses unknown and missing joints by name (None or empty: the policy's own order)."""
    names = list(action_names)
    if not command_joints:
        return np.arange(len(names))
    joints = list(command_joints)
    unknown = [j for j in joints if j not in names]
    missing = [n for n in names if n not in joints]
    duplicates = sorted({j for j in joints if joints.count(j) > 1})
    if unknown or missing or duplicates:
        problems = []
        if unknown:
            problems.append(f'unknown joints {unknown}')
        if missing:
            problems.append(f'missing joints {missing}')
        if duplicates:
            problems.append(f'duplicate joints {duplicates}')
        raise ValueError(f'command_joints {joints}: {", ".join(problems)}; expected an ordering of the '
                         f"policy's actions {names}")
    return np.array([names.index(j) for j in joints])


class StudentController:
    """One student on live sensors. Thread-safe between one feeder (`sensors`, `estop`) and
    tickers (`tick`); a tick allocates only its small command vectors."""

    def __init__(self, ckpt: Checkpoint, backend: Backend, safety: SafetyFilter, watchdog: Watchdog,
                 stats: LoopStats, period_s: float, command_joints: Sequence[str] | None = None,
                 topics: dict[str, str] | None = None, command_timeout_s: float = DEFAULT_TIMEOUT_S,
                 clock_ns: Callable[[], int] = time.time_ns):
        self.builder = SensorObsBuilder.from_spec(ckpt.obs_spec)
        self.clock_ns = clock_ns   # the time the sensor stamps are in (for the sample age)
        self.needs_imu = self.builder.has_imu
        # The velocity command a locomotion student follows (None: its observation has none).
        self.velocity_command = VelocityCommand(command_timeout_s) if self.builder.has_command else None
        self.observed_command: np.ndarray | None = None   # the command in the newest good observation
        self.history = ckpt.history_buffer()
        self.flat = ckpt.history is None
        self.action_names = list(ckpt.action_names)
        self.order = command_order(self.action_names, command_joints)
        self.command_joints = [self.action_names[i] for i in self.order]
        self.backend, self.safety, self.watchdog, self.stats = backend, safety, watchdog, stats
        self.estop = EStop()
        self.period_s = period_s
        self.obs = np.empty(self.builder.spec.size, dtype=np.float64)
        self._lock = threading.Lock()       # sensors vs tick
        self._tick_lock = threading.Lock()  # loop thread vs sensor-triggered ticks
        self.bad_samples = 0                # samples dropped: malformed, non-finite or lacking a joint
        self.last_error = ''                # why the newest bad sample was dropped (topic: cause)
        self.last_bad_ns: int | None = None  # its arrival
        self.topics = {'joints': 'joint_states', 'imu': 'imu/data', 'command': 'cmd_vel', **(topics or {})}
        self.activate(time.monotonic_ns())

    # ------------------------------------------------------------------ inputs
    def activate(self, now_ns: int) -> None:
        """Start from scratch: empty history, rate limit from zero, watchdog waiting, e-stop cleared."""
        with self._lock:
            self._joints = self._imu = None
            self._joints_ns = self._imu_ns = 0
            self._new_joints = self._new_imu = False
        self.last_good_ns: int | None = None
        self.last_bad_ns = None
        self._newest_bad = False
        self.activated_ns = now_ns
        self._resume = False
        self._last_header = None
        self.forget()
        self.episode_start_ns: int | None = None   # newest episode start announced by a simulator
        self._pushed_ns: int | None = None          # stamp of the newest sample in the history
        self.safety.reset()
        self.watchdog.reset()
        self.estop.reset()
        self.stats.reset()

    def sensors(self, joints=None, imu=None, arrival_ns: int | None = None) -> None:
        """Store the newest sensor_msgs/JointState and/or Imu (any object with their fields)."""
        now = time.monotonic_ns() if arrival_ns is None else arrival_ns
        with self._lock:
            if joints is not None:
                self._joints, self._joints_ns, self._new_joints = joints, now, True
            if imu is not None:
                self._imu, self._imu_ns, self._new_imu = imu, now, True

    def set_velocity_command(self, values: Sequence[float], arrival_ns: int | None = None) -> None:
        """Store the newest velocity command (vx, vy, yaw_rate: a Twist's linear.x, linear.y,
        angular.z); NaN/Inf is refused with a ValueError. Ignored by a student without a command."""
        if self.velocity_command is not None:
            self.velocity_command.set(values, time.monotonic_ns() if arrival_ns is None else arrival_ns)

    def sample_ready(self) -> bool:
        """A complete new sample (joints, and IMU when the policy reads one) since the last tick."""
        return self._new_joints and (self._new_imu or not self.needs_imu)

    def check_joints(self, names: Sequence[str]) -> list[str]:
        """Joints the policy reads that a joint_states message with `names` lacks."""
        return self.builder.missing_joints(names)

    # ------------------------------------------------------------------ the tick
    def tick(self, now_ns: int, infer: bool = True) -> Tick | None:
        """Decide this period's command. With `infer=False` (the loop's watchdog tick when the
        policy runs on sensor arrival) only a safe action is returned, else None."""
        with self._tick_lock:
            return self._tick(now_ns, infer)

    def _tick(self, now_ns: int, infer: bool) -> Tick | None:
        new = False
        if infer:
            with self._lock:
                if self.sample_ready():
                    new, joints, imu = True, self._joints, self._imu
                    arrival = max(self._joints_ns, self._imu_ns if self.needs_imu else 0)
                    oldest = min(self._joints_ns, self._imu_ns) if self.needs_imu else self._joints_ns
                    self._new_joints = self._new_imu = False
            if new:
                new = self._observe(joints, imu, arrival, now_ns)
                if new:
                    self.last_good_ns = oldest
        if self.estop.latched:
            return self.safe('estop')
        if self.last_good_ns is None:
            if now_ns - self.activated_ns > self.watchdog.timeout_ns:
                self.watchdog.expire()
            return self.safe(self.watchdog.state)
        state = self.watchdog.check(now_ns, self.last_good_ns)
        if state != 'ok':
            self._resume = True
            return self.safe(state)
        if not infer:
            return None
        if self._resume:
            # Data came back after a gap: the window would splice two moments; start it afresh.
            self._resume = False
            self.forget()
            if not new:
                return self.safe('stale')
        if not new:
            return Tick(self.safety.last[self.order], REPEAT, sample_header=self._last_header)
        self._episode_boundary(joints)
        window = self.history.push(self.obs)
        start = time.perf_counter_ns()
        mean = self.backend(window[0] if self.flat else window)
        self.stats.inference.add((time.perf_counter_ns() - start) / NS_PER_S)
        command, ok = self.safety(mean, self.period_s)
        self.history.set_action(command)
        if not ok:
            return Tick(command[self.order], SAFE, 'nonfinite')
        self._last_header = getattr(joints, 'header', None)
        return Tick(command[self.order], POLICY, '', arrival, self._last_header)

    def forget(self) -> None:
        """Start the student's memory afresh: an empty history window and, for a recurrent
        student, a zero hidden state (activation, a new episode, data back after a fault)."""
        self.history.reset()
        self.backend.reset()

    def episode_started(self, stamp_ns: int) -> None:
        """A simulator started an episode whose first observation carries `stamp_ns`: that
        sample starts a fresh history window, as at the start of every training episode."""
        self.episode_start_ns = stamp_ns

    def _episode_boundary(self, joints) -> None:
        start = self.episode_start_ns
        stamp_msg = getattr(getattr(joints, 'header', None), 'stamp', None)
        if start is None or not hasattr(stamp_msg, 'sec'):
            return
        stamp = stamp_ns(stamp_msg)
        if stamp >= start and (self._pushed_ns is None or self._pushed_ns < start):
            self.forget()
        self._pushed_ns = stamp

    def _observe(self, joints, imu, arrival_ns: int, now_ns: int) -> bool:
        """Build the observation, with the velocity command in force at `now_ns` when the student
        reads one; a bad sample (malformed, non-finite, lacking a joint) is counted with its cause
        and treated like no sample at all: the watchdog is not refreshed."""
        command = None if self.velocity_command is None else self.velocity_command.value(now_ns)
        try:
            age = self.sample_age(joints) if self.builder.has_sample_age else None
            self.builder.build_from_messages(joints, imu, out=self.obs, command=command, sample_age=age)
        except SensorMessageError as exc:
            self.bad_samples += 1
            self.last_error = f'{self.topics[exc.stream]}: {exc}'
            self.last_bad_ns = arrival_ns
            self._newest_bad = True
            return False
        self._newest_bad = False
        self.observed_command = command
        return True

    def sample_age(self, joints) -> float:
        """Seconds since `joints` was sampled (its header stamp), by `clock_ns`."""
        stamp = stamp_ns(joints.header.stamp)
        now = self.clock_ns()
        age = (now - stamp) / NS_PER_S
        if not -MAX_CLOCK_SKEW_S <= age <= MAX_SAMPLE_AGE_S:
            raise SensorMismatch(f'{SAMPLE_AGE}: the sample stamped {stamp_text(stamp)} s is {age:.3f} s old by this '
                                 f"node's clock ({stamp_text(now)} s); expected 0 to {MAX_SAMPLE_AGE_S:g} s. Are the "
                                 f'stamps in the clock\'s time (use_sim_time true under a simulator)?')
        return max(age, 0.0)

    def fault(self, now_ns: int) -> str:
        """The current cause of missing valid samples: a silent topic, or the newest sample's defect
        ('' when the newest sample was good)."""
        timeout = self.watchdog.timeout_ns
        with self._lock:
            arrivals = {'joints': self._joints_ns, **({'imu': self._imu_ns} if self.needs_imu else {})}
        for stream, arrival in arrivals.items():
            if now_ns - max(arrival, self.activated_ns) > timeout:
                since = 'since activation' if arrival < self.activated_ns else \
                    f'for {(now_ns - arrival) / NS_PER_S:.2f} s'
                return f'no message on {self.topics[stream]} {since}'
        if self._newest_bad:
            return self.last_error
        return ''

    def safe(self, reason: str) -> Tick:
        """The safe action as this tick's command (also for the node's final command and errors)."""
        return Tick(self.safety.safe()[self.order], SAFE, reason)
