"""Shared test fixtures: an isolated DDS domain, an rclpy test node, node processes."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# One DDS domain per test session, discovery on this host only, so parallel runs and other
# sessions on the machine never see each other. Set before rclpy initialises anywhere.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '0')


class NodeProcess:
    """A node executable run as a real process, its output captured to a log file."""

    def __init__(self, executable: str, params: dict, log: Path, ros_args: list[str] | None = None):
        # The console script installed beside this interpreter (venv or not), else the module.
        beside = Path(sys.executable).parent / executable
        module = f'distill_ros.nodes.{executable}'
        cmd = [str(beside)] if beside.is_file() else [sys.executable, '-m', module]
        # Parameter files and remappings first, then -p overrides: later sources win.
        args = ['--ros-args', *(ros_args or [])]
        for key, value in params.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ['-p', f'{key}:={text}']
        self.log_path = log
        self._log = open(log, 'w')
        self.proc = subprocess.Popen(cmd + args, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=os.environ.copy())

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def poll(self) -> int | None:
        return self.proc.poll()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT, as Ctrl-C or ros2 launch
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def start_node(tmp_path) -> Callable[..., NodeProcess]:
    started: list[NodeProcess] = []

    def start(executable: str, params: dict | None = None, ros_args: list[str] | None = None) -> NodeProcess:
        process = NodeProcess(executable, params or {}, tmp_path / f'{executable}_{len(started)}.log', ros_args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def ros():
    """An initialised rclpy context with one test node and an executor; `spin_until(pred, timeout)`."""
    rclpy = pytest.importorskip('rclpy')
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f'test_{os.getpid()}_{random.randint(0, 1 << 30)}', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    class Ros:
        pass

    r = Ros()
    r.node = node
    r.executor = executor

    def spin_until(predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            executor.spin_once(timeout_sec=0.05)
        return predicate()

    r.spin_until = spin_until
    yield r
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
