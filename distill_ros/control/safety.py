"""What stands between the policy and the actuators: limits, rate limits, a finite check, the
safe action, a sensor watchdog and an e-stop latch. Plain numpy, no ROS."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from distill_ros.stamps import NS_PER_S

SAFE_ACTIONS = ('zero', 'hold')


class SafetyFilter:
    """Turns a policy output into a command that may go to the actuators.

    - non-finite values (NaN/Inf) are never passed on: the safe action replaces the whole command
    - each value is clipped to [low, high]
    - with `max_rate` (units per second, per joint; inf = none) a command moves at most
      `max_rate * dt` from the previous command; after `reset` the previous command is zero
    - the safe action is zero, or `hold`: the last command sent (zero before any)
    """

    def __init__(self, low: Sequence[float], high: Sequence[float], max_rate: Sequence[float] | float = np.inf,
                 safe_action: str = 'zero'):
        self.low = np.asarray(low, dtype=np.float64).copy()
        self.high = np.asarray(high, dtype=np.float64).copy()
        if self.low.shape != self.high.shape or np.any(self.low > self.high):
            raise ValueError(f'action limits must have equal shapes and low <= high; got low {self.low.tolist()}, '
                             f'high {self.high.tolist()}')
        self.max_rate = np.broadcast_to(np.asarray(max_rate, dtype=np.float64), self.low.shape).copy()
        if np.any(self.max_rate <= 0) or np.any(np.isnan(self.max_rate)):
            raise ValueError(f'max_rate must be > 0 (inf for none); got {self.max_rate.tolist()}')
        if safe_action not in SAFE_ACTIONS:
            raise ValueError(f'safe_action is {safe_action!r}; expected one of {list(SAFE_ACTIONS)}')
        self.safe_action = safe_action
        self.last = np.zeros_like(self.low)     # the last command sent
        self._out = np.zeros_like(self.low)
        self._zero = np.zeros_like(self.low)
        self.rejected = 0                        # policy outputs replaced because they were not finite
        self.limited = 0                         # commands changed by the rate limit

    def reset(self) -> None:
        """Forget the previous command: the rate limit ramps from zero again."""
        self.last[:] = 0.0

    def safe(self) -> np.ndarray:
        """The safe action (a copy); becomes the previous command."""
        if self.safe_action == 'zero':
            self.last[:] = 0.0
        return self.last.copy()

    def __call__(self, action: np.ndarray, dt: float) -> tuple[np.ndarray, bool]:
        """(command, ok): ok is False when `action` was not finite and the safe action was sent."""
        if action.shape != self.low.shape or not np.all(np.isfinite(action)):
            self.rejected += 1
            return self.safe(), False
        out = self._out
        np.clip(action, self.low, self.high, out=out)
        if dt > 0 and np.any(np.isfinite(self.max_rate)):
            step = self.max_rate * dt
            limited = np.clip(out, self.last - step, self.last + step)
            if np.any(limited != out):
                self.limited += 1
                out[:] = limited
        self.last[:] = out
        return out.copy(), True


class Watchdog:
    """Sensor freshness. `check(now_ns, last_good_ns)` returns the state:

    waiting  no valid sample since activation (the safe action is sent)
    ok       the newest valid sample is at most `timeout` old
    stale    it is older (ERROR): the safe action is sent
    latched  fresh data came back after a trip but `latch` asks for re-activation first

    Without `latch` the watchdog returns to ok on its own as soon as a fresh sample arrives.
    """

    def __init__(self, timeout_s: float, latch: bool = False):
        if not timeout_s > 0:
            raise ValueError(f'watchdog timeout must be > 0 s, got {timeout_s}')
        self.timeout_ns = round(timeout_s * NS_PER_S)
        self.latch = latch
        self.trips = 0
        self.reset()

    def reset(self) -> None:
        self.state = 'waiting'
        self._tripped = False

    def check(self, now_ns: int, last_good_ns: int | None) -> str:
        if last_good_ns is None:
            return self.state  # waiting (or stale if it tripped before any sample)
        fresh = now_ns - last_good_ns <= self.timeout_ns
        if not fresh:
            if self.state != 'stale':
                self.trips += 1
            self._tripped = True
            self.state = 'stale'
        elif self._tripped and self.latch:
            self.state = 'latched'
        else:
            self._tripped = False
            self.state = 'ok'
        return self.state

    def expire(self) -> None:
        """No valid sample at all within the timeout after activation: counts as a trip."""
        if self.state != 'stale':
            self.trips += 1
        self.state, self._tripped = 'stale', True


class EStop:
    """An emergency-stop latch: once tripped it stays tripped until `reset`."""

    def __init__(self):
        self.latched = False
        self.trips = 0

    def trip(self) -> None:
        if not self.latched:
            self.trips += 1
        self.latched = True

    def reset(self) -> None:
        self.latched = False
