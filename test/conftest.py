"""Shared test fixtures: an isolated DDS domain, an rclpy test node, node processes."""
from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

import pytest

from distill_ros.procs import GraphProcesses, NodeProcess

# One DDS domain per test session, discovery on this host only, so parallel runs and other
# sessions on the machine never see each other. Set before rclpy initialises anywhere.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '0')


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
def start_graph(tmp_path) -> Callable[..., GraphProcesses]:
    """`start_graph(name, **launch_arguments)`: a graph of distill_ros.graphs started as processes,
    as its launch file starts it; stopped (SIGINT) at the end of the test."""
    started: list[GraphProcesses] = []

    def start(graph: str, **arguments) -> GraphProcesses:
        processes = GraphProcesses(graph, arguments, tmp_path / 'logs', tag=f'{len(started)}_')
        started.append(processes)
        return processes

    yield start
    for processes in started:
        processes.stop()


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
