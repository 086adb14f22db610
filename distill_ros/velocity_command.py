"""The velocity command a locomotion policy follows, as a robot receives it: the newest
geometry_msgs/Twist on `cmd_vel` (teleop, Nav2), read as (linear.x, linear.y, angular.z), and zero
velocity once it is older than a timeout, so a teleop or planner that falls silent stops the robot.

No rclpy: `student_controller_node` and `sim_node` hand it plain values and arrival times; the
student controller puts `value(now)` into the observation's `command` field, the simulator into
`DistillEnv.set_command`. Outside `control/` so that sim_node, which imports it, does not load the
inference backends (torch, onnxruntime) at start.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from distill_ros.observation import COMMAND_ELEMENTS
from distill_ros.stamps import NS_PER_S

DEFAULT_TIMEOUT_S = 0.5


class VelocityCommand:
    """The newest command (vx m/s, vy m/s, yaw_rate rad/s) with its arrival time in ns.

    One writer (the subscription) and readers on other threads (the control loop): the command
    and its arrival are replaced together as one tuple, so a reader never sees one without the other.
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        if not timeout_s > 0:
            raise ValueError(f'velocity command timeout is {timeout_s} s; expected > 0')
        self.timeout_ns = round(timeout_s * NS_PER_S)
        self._zero = np.zeros(len(COMMAND_ELEMENTS))
        self._latest: tuple[np.ndarray, int] | None = None

    def set(self, values: Sequence[float], arrival_ns: int) -> None:
        """Take a new command; a wrong size or NaN/Inf is refused (ValueError) and the last one kept."""
        command = np.array(values, dtype=np.float64).reshape(-1)
        if command.shape != self._zero.shape:
            raise ValueError(f'velocity command has {command.size} values; expected {len(COMMAND_ELEMENTS)} '
                             f'{list(COMMAND_ELEMENTS)}')
        if not np.isfinite(command).all():
            raise ValueError(f'velocity command with NaN or Inf {command.tolist()}; expected finite '
                             f'{list(COMMAND_ELEMENTS)}')
        self._latest = (command, int(arrival_ns))

    def value(self, now_ns: int) -> np.ndarray:
        """The command in force at `now_ns` (same clock as the arrivals): the newest one, or zeros
        when none has arrived or the newest is older than the timeout. Read-only."""
        latest = self._latest
        return self._zero if self._stale(latest, now_ns) else latest[0]

    def age_s(self, now_ns: int) -> float | None:
        """Seconds since the newest command arrived (None: none yet)."""
        latest = self._latest
        return None if latest is None else (now_ns - latest[1]) / NS_PER_S

    def timed_out(self, now_ns: int) -> bool:
        """No command, or the newest is older than the timeout: `value` is zero velocity."""
        return self._stale(self._latest, now_ns)

    def _stale(self, latest: tuple[np.ndarray, int] | None, now_ns: int) -> bool:
        return latest is None or now_ns - latest[1] > self.timeout_ns

    def clear(self) -> None:
        """Forget the newest command (zero velocity until the next one)."""
        self._latest = None
