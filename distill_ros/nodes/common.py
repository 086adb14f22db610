"""What every node's `main` shares: start-up errors reported by name, clean shutdown, exit status."""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.task import Future

from distill_ros.nodes.params import ParameterError
from distill_ros.sim.task import TaskConfigError

# Reliable, keep last 10: what a robot driver's publishers use; a sensor-data (best effort)
# subscriber is compatible with it.
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# A deep reliable queue for streams that must not lose a sample to a briefly busy subscriber
# (a recorder, a test): with KEEP_LAST, a reliable writer drops what its history no longer holds.
RELIABLE_DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# Episode announcements reach late joiners (a recorder started after the simulator).
LATCHED = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
SENSOR_DATA = qos_profile_sensor_data

# One Ctrl-C in a terminal reaches a node under `ros2 launch` twice: the terminal sends SIGINT to
# the whole process group, then launch sends its own on shutdown. A repeat this soon after the first
# is that same Ctrl-C; a later one means the user insists.
REPEATED_SIGINT_S = 2.0


class SubscriptionGate:
    """Opens once `publisher` is matched with `count` subscriptions (matched by DDS, not only seen in
    the graph), and each of `more` (publisher, count) too, and they have stayed so for `grace`
    seconds, time for the other endpoints of the same participants to match too. With every count 0
    it is open from the start."""

    def __init__(self, publisher, count: int, grace: float = 0.5, more: tuple = ()):
        self.targets = [(publisher, count), *more]
        self.grace = grace
        self.is_open = all(n <= 0 for _, n in self.targets)
        self._matched_at: float | None = None

    def check(self) -> bool:
        if self.is_open:
            return True
        if any(pub.get_subscription_count() < n for pub, n in self.targets):
            return False
        now = time.monotonic()
        if self._matched_at is None:
            self._matched_at = now
        self.is_open = now - self._matched_at >= self.grace
        return self.is_open


class FinishingNode(Node):
    """A node that can end its own process: `finish(status)` stops the spin in `run`. A lifecycle
    node gets the same as `class MyNode(FinishingNode, LifecycleNode)`."""

    def __init__(self, name: str):
        super().__init__(name)
        self.finished = Future()

    def finish(self, status: int = 0) -> None:
        if not self.finished.done():
            self.finished.set_result(status)

    def guarded(self, callback: Callable) -> Callable:
        """Wrap a callback so an unexpected error is logged and ends the node with status 1
        (executors differ in whether they re-raise callback errors)."""
        def wrapper(*args):
            try:
                return callback(*args)
            except Exception as exc:  # noqa: BLE001 - reported and turned into the exit status
                self.get_logger().error(f'{type(exc).__name__}: {exc}\n{traceback.format_exc()}')
                self.finish(1)
        return wrapper


def _stopping(signum: int, frame) -> None:
    """Beneath rclpy's handler, which has already begun the shutdown."""


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _deliver_last_messages(node: Node, timeout_s: float = 2.0) -> None:
    """A node that ends itself has often just published its last word (the simulator's final step,
    the distill node's 'done'): wait, up to `timeout_s` in all, until every matched reliable
    subscriber has acknowledged what each publisher sent, or the process could end before DDS
    delivered it (seen on a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    for publisher in node.publishers:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        publisher.wait_for_all_acked(Duration(seconds=left))


def run(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Create the node, spin it until shutdown or until it calls `finish`, and return the status.

    Configuration errors (a refused parameter, an invalid task file) are logged with their
    message and give status 2, before the node does anything.
    """
    # SIGUSR1 prints every thread's Python stack (to the node's log): what a process manager sends
    # before it kills a node that did not stop when asked (distill_ros.procs), so a hang is explained.
    if hasattr(signal, 'SIGUSR1'):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    # rclpy's handlers stop the spin on the first SIGINT/SIGTERM and then call the Python-level
    # handler beneath them: a no-op here, not KeyboardInterrupt at some random line.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stopping)
    try:
        rclpy.init(args=args)
    except RCLError as exc:  # e.g. a --params-file that is not valid parameter YAML
        reason = str(exc).split(', at /')[0].replace('\n', ' ')
        print(f'[{os.path.basename(sys.argv[0])}] configuration error: {reason}', file=sys.stderr, flush=True)
        return 2
    node: Node | None = None
    status = 0
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        finished = getattr(node, 'finished', None)
        if finished is not None:
            executor.spin_until_future_complete(finished)
            status = finished.result() if finished.done() else 0
            if finished.done():
                _deliver_last_messages(node)
        else:
            executor.spin()
    except (ParameterError, TaskConfigError, FileNotFoundError, ValueError) as exc:
        name = node.get_name() if node is not None else os.path.basename(sys.argv[0])
        print(f'[{name}] configuration error: {exc}', file=sys.stderr, flush=True)
        status = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # The signal shut the context down in the middle of a callback (a publish on an invalid
        # context fails): that is the shutdown asked for, not an error.
    finally:
        # Later signals (a terminal's Ctrl-C reaches every process of the group and `ros2 launch`
        # forwards another) must not cut the final work short, nor kill the process while Python
        # finalizes (it restores SIG_DFL for handled signals, not for ignored ones).
        _ignore_signals()
        if node is not None:
            close = getattr(node, 'close', None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        _ignore_signals()  # rclpy.shutdown restored the handlers it had replaced
    return status
