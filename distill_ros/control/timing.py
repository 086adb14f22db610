"""A control loop on absolute deadlines in its own thread, and the statistics it keeps.

Why not a plain rclpy timer: near 500 Hz rclpy timers drift and spike (rclpy #1223, #1452), and a
relative `sleep(period)` accumulates every tick's overrun. Here tick k is due at
`start + k * period`; the thread sleeps until shortly before the deadline (the OS wakes a sleeper
late by tens of microseconds to milliseconds) and busy-waits the rest. A tick that starts more
than a period late skips the deadlines it missed instead of bursting to catch up, and counts them.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from distill_ros.stamps import NS_PER_S


class Ring:
    """The last `size` float samples, preallocated; `values()` is a copy in no particular order."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f'ring size must be >= 1, got {size}')
        self._data = np.zeros(size, dtype=np.float64)
        self._n = 0

    def add(self, value: float) -> None:
        self._data[self._n % self._data.size] = value
        self._n += 1

    def clear(self) -> None:
        self._n = 0

    @property
    def count(self) -> int:
        """Samples added since the last clear (may exceed the size)."""
        return self._n

    def values(self) -> np.ndarray:
        return self._data[:min(self._n, self._data.size)].copy()

    def percentile(self, q: float) -> float:
        v = self.values()
        return float(np.percentile(v, q)) if v.size else float('nan')

    def max(self) -> float:
        v = self.values()
        return float(v.max()) if v.size else float('nan')


@dataclass
class LoopStats:
    """What the loop and the controller measure, in seconds, over the last `window` samples.

    period_error: actual interval between tick starts minus the nominal period (the jitter)
    lateness:     tick start minus its deadline
    latency:      newest sensor sample's arrival to the command's publication
    inference:    one policy call
    Counters are totals since the last `reset`.
    """

    window: int = 4096
    miss_tolerance_s: float = 0.001

    def __post_init__(self):
        self.period_error = Ring(self.window)
        self.lateness = Ring(self.window)
        self.latency = Ring(self.window)
        self.inference = Ring(self.window)
        self.reset()

    def reset(self) -> None:
        for ring in (self.period_error, self.lateness, self.latency, self.inference):
            ring.clear()
        self.ticks = 0
        self.deadline_misses = 0   # ticks that started more than miss_tolerance_s late
        self.skipped = 0           # deadlines dropped because a tick ran more than a period late
        self.max_lateness = 0.0
        self.max_period_error = 0.0
        self.started_ns = time.monotonic_ns()

    def record_tick(self, lateness_s: float, period_error_s: float | None) -> None:
        self.ticks += 1
        self.lateness.add(lateness_s)
        if lateness_s > self.max_lateness:
            self.max_lateness = lateness_s
        if lateness_s > self.miss_tolerance_s:
            self.deadline_misses += 1
        if period_error_s is not None:
            self.period_error.add(period_error_s)
            if abs(period_error_s) > self.max_period_error:
                self.max_period_error = abs(period_error_s)

    def jitter_p99(self) -> float:
        v = self.period_error.values()
        return float(np.percentile(np.abs(v), 99)) if v.size else float('nan')

    def rate_hz(self) -> float:
        elapsed = (time.monotonic_ns() - self.started_ns) / NS_PER_S
        return self.ticks / elapsed if elapsed > 0 else 0.0


def request_fifo(priority: int) -> tuple[bool, str]:
    """Ask for SCHED_FIFO at `priority` for the calling thread. Returns (granted, what happened):
    without the privilege (CAP_SYS_NICE / an rtprio limit) the thread keeps the normal scheduler."""
    if not hasattr(os, 'sched_setscheduler'):
        return False, 'SCHED_FIFO is not available on this platform; running with the normal scheduler'
    try:
        # pid 0: the calling thread on Linux.
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError) as exc:
        return False, (f'SCHED_FIFO priority {priority} refused ({exc.strerror or exc}); running with the normal '
                       f'scheduler (grant CAP_SYS_NICE or an rtprio limit in /etc/security/limits.conf)')
    return True, f'SCHED_FIFO priority {priority} granted'


def restore_normal_scheduling(thread_ids: list[int] | None = None) -> bool:
    """Put the calling thread (or these thread ids) back on the normal scheduler."""
    ok = True
    for tid in thread_ids if thread_ids is not None else [0]:
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        except (AttributeError, OSError):
            ok = False
    return ok


def fifo_other_threads(priority: int, skip: set[int] = frozenset()) -> tuple[list[int], str]:
    """SCHED_FIFO at `priority` for every thread of this process not in `skip` (Linux thread ids)
    that is still on the normal scheduler: the DDS receive threads and the executor thread, which
    sit on the sensor-to-command path. Returns the thread ids changed and what happened."""
    changed: list[int] = []
    try:
        tids = [int(t) for t in os.listdir('/proc/self/task')]
    except OSError as exc:
        return changed, f'cannot list this process\'s threads ({exc})'
    for tid in tids:
        if tid in skip:
            continue
        try:
            if os.sched_getscheduler(tid) != os.SCHED_OTHER:
                continue
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
            changed.append(tid)
        except (PermissionError, OSError):  # refused, or the thread has ended
            continue
    return changed, f'{len(changed)} other threads of the process at SCHED_FIFO priority {priority}'


class RealtimeLoop:
    """Calls `tick(deadline_ns, start_ns)` every `period_s` on a dedicated thread.

    Times are `time.monotonic_ns()`. `fifo_priority` > 0 asks for SCHED_FIFO on the loop thread;
    the outcome is in `fifo_granted` / `fifo_message` once `started` is set.
    """

    def __init__(self, period_s: float, tick: Callable[[int, int], None], stats: LoopStats,
                 busy_wait_s: float = 0.0002, fifo_priority: int = 0, name: str = 'control_loop'):
        if not period_s > 0:
            raise ValueError(f'control period must be > 0, got {period_s}')
        self.period_ns = round(period_s * NS_PER_S)
        self.busy_wait_ns = round(busy_wait_s * NS_PER_S)
        self.tick, self.stats, self.fifo_priority = tick, stats, fifo_priority
        self.fifo_granted, self.fifo_message = False, 'SCHED_FIFO not requested'
        self.started = threading.Event()
        self.native_id: int | None = None  # the loop thread's Linux thread id, once started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        self.started.wait()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def wait_until(self, deadline_ns: int) -> None:
        clock = time.monotonic_ns
        remaining = deadline_ns - clock()
        if remaining > self.busy_wait_ns:
            time.sleep((remaining - self.busy_wait_ns) / NS_PER_S)
        while clock() < deadline_ns:
            pass

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        if self.fifo_priority > 0:
            self.fifo_granted, self.fifo_message = request_fifo(self.fifo_priority)
        self.started.set()
        period, clock = self.period_ns, time.monotonic_ns
        deadline = clock() + period
        previous: int | None = None
        try:
            while not self._stop.is_set():
                self.wait_until(deadline)
                if self._stop.is_set():
                    break
                start = clock()
                self.stats.record_tick((start - deadline) / NS_PER_S,
                                       None if previous is None else (start - previous - period) / NS_PER_S)
                previous = start
                self.tick(deadline, start)
                deadline += period
                now = clock()
                if now > deadline + period:  # more than a period behind: drop the missed deadlines
                    missed = (now - deadline) // period
                    deadline += missed * period
                    self.stats.skipped += missed
                    previous = None
        except BaseException as exc:  # noqa: BLE001 - kept for the owner to report
            self.error = exc
            raise
