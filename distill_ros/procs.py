"""Node executables run as processes (what `ros2 launch` does), for the demo and the tests.

Each node is the console script installed beside the running interpreter (`<prefix>/bin/<node>`),
or `python -m distill_ros.nodes.<node>` when there is none. Parameter files and remappings come
first on the command line, then `-p` overrides, so overrides win as in a launch file.
`GraphProcesses` starts a whole graph of distill_ros.graphs, as its launch file does, waits for it
to end by itself and stops what is left as `ros2 launch` does (SIGINT, then SIGUSR1 for a stack
dump, SIGTERM, SIGKILL). Nothing here imports rclpy: every node runs in its own process.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from distill_ros.graphs import GRAPHS, ResolvedNode

# How long a node has to exit after SIGINT before it is stopped by force (NodeProcess.stop).
STOP_TIMEOUT_S = 10.0


def localhost_env(domain_id: int | None = None) -> dict[str, str]:
    """This process's environment with a private DDS domain (`domain_id`, or a random one) and
    discovery on this host only: nodes started in it neither see nor disturb other ROS 2 systems on
    the network."""
    # IDs 0..101 keep the DDS ports out of Linux's ephemeral range (ROS 2's advice)
    domain = domain_id if domain_id is not None else random.randint(60, 101)
    return {**os.environ, 'ROS_DOMAIN_ID': str(domain), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}


def node_command(executable: str) -> list[str]:
    beside = Path(sys.executable).parent / executable
    return [str(beside)] if beside.is_file() else [sys.executable, '-m', f'distill_ros.nodes.{executable}']


def ros_arguments(params: dict, ros_args: list[str] | None = None) -> list[str]:
    args = ['--ros-args', *(ros_args or [])]
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ['-p', f'{key}:={text}']
    return args


class NodeProcess:
    """A node executable run as a real process, its output captured to a log file."""

    def __init__(self, executable: str, params: dict, log: Path, ros_args: list[str] | None = None,
                 env: dict[str, str] | None = None):
        self.executable = executable
        self.log_path = Path(log)
        self.interrupted = False
        self.forced = False
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(node_command(executable) + ros_arguments(params, ros_args), stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env if env is not None else os.environ.copy())

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def poll(self) -> int | None:
        return self.proc.poll()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def interrupt(self) -> None:
        """SIGINT, as ros2 launch sends on shutdown; once only (a second one means 'hurry' to a node)."""
        if self.proc.poll() is None and not self.interrupted:
            self.proc.send_signal(signal.SIGINT)
            self.interrupted = True

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGINT, then as `ros2 launch` escalates for a node that does not exit: SIGTERM, then
        SIGKILL. Before the SIGTERM, SIGUSR1 has the node print every thread's stack to its log
        (nodes/common.py), so the log says where it was stuck; `forced` records that it happened."""
        if self.proc.poll() is None:
            self.interrupt()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.forced = True
                steps = ((getattr(signal, 'SIGUSR1', None), 1.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, None))
                for sig, wait in steps:
                    if sig is None or self.proc.poll() is not None:
                        continue
                    self.proc.send_signal(sig)
                    try:
                        self.proc.wait(timeout=wait)
                    except subprocess.TimeoutExpired:
                        pass
        self._log.close()


class GraphFailed(RuntimeError):
    """A graph that did not end by itself in time, or a node of it that failed."""


class GraphProcesses:
    """The nodes of a graph (distill_ros.graphs) started as processes, exactly as
    `ros2 launch distill_ros <graph>.launch.py arg:=value ...` starts them: the same parameter
    files, then the same overrides (in a parameters file, typed as launch types them), the same
    remappings and namespace. It ends as the launch does: `finished()` once every finishing node has
    exited or any node failed; `wait()` then stops the others with SIGINT. As a context manager it
    stops every node still running when the block is left (also on an error)."""

    def __init__(self, graph: str, arguments: dict, logs: Path, env: dict[str, str] | None = None, tag: str = ''):
        self.graph = GRAPHS[graph]
        self.nodes: list[ResolvedNode] = self.graph.resolve(**arguments)
        logs = Path(logs)
        logs.mkdir(parents=True, exist_ok=True)
        self.log_dir = logs
        self.processes: dict[str, NodeProcess] = {}
        for node in self.nodes:
            overrides = logs / f'{tag}{node.name}.params.yaml'
            overrides.write_text(yaml.safe_dump({'/**': {'ros__parameters': node.parameters}}))
            ros_args = ['-r', f'__node:={node.name}', '--params-file', str(node.params_file),
                        '--params-file', str(overrides)]
            if node.namespace:
                ros_args += ['-r', f'__ns:=/{node.namespace.strip("/")}']
            for old, new in node.remappings:
                ros_args += ['-r', f'{old}:={new}']
            self.processes[node.name] = NodeProcess(node.executable, {}, logs / f'{tag}{node.name}.log', ros_args,
                                                    env=env)

    def __getitem__(self, name: str) -> NodeProcess:
        return self.processes[name]

    def __enter__(self) -> GraphProcesses:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def failed(self) -> dict[str, int]:
        """Nodes that exited with a non-zero status, with their status."""
        codes = {name: p.poll() for name, p in self.processes.items()}
        return {name: code for name, code in codes.items() if code not in (None, 0)}

    def finished(self) -> bool:
        """When the launch would shut down: every finishing node exited, or a node failed."""
        finishers = [self.processes[n.name] for n in self.nodes if n.finishes]
        return bool(self.failed()) or bool(finishers) and all(p.poll() is not None for p in finishers)

    def wait(self, timeout: float, poll: Callable[[], None] | None = None, interval: float = 0.1) -> dict[str, int]:
        """Until `finished()` (TimeoutError after `timeout` s), calling `poll()` every `interval` s
        meanwhile (to show progress), then SIGINT to the rest; every node's exit status."""
        deadline = time.monotonic() + timeout
        while not self.finished():
            if time.monotonic() > deadline:
                raise TimeoutError(f'{self.graph.name}: not finished after {timeout:.0f} s; '
                                   f'logs: {", ".join(str(p.log_path) for p in self.processes.values())}')
            if poll is not None:
                poll()
            time.sleep(interval)
        return self.stop()

    def complete(self, timeout: float, poll: Callable[[], None] | None = None) -> str | None:
        """Run the graph as one stage of work: `wait` for it to end by itself, then judge the exit
        statuses. GraphFailed when it did not end in `timeout` s or a node failed (with the end of
        each failed node's log). A node that did not exit within STOP_TIMEOUT_S of the SIGINT was
        stopped by force (`NodeProcess.stop`, its stack in its log); when every other node exited
        cleanly the graph's work is done, so that is returned as a warning, not a failure (None:
        every node exited cleanly)."""
        try:
            codes = self.wait(timeout, poll, interval=0.25)
        except TimeoutError:
            raise GraphFailed(f'{self.graph.name}: not finished after {timeout:.0f} s; see {self.log_dir}') from None
        failed = {name: code for name, code in codes.items() if code != 0}
        forced = {name: code for name, code in failed.items() if self.processes[name].forced}
        if failed and forced == failed:
            return (f'{", ".join(forced)} did not exit within {STOP_TIMEOUT_S:.0f} s of SIGINT and was stopped by '
                    f'force (status {forced}); where it was: '
                    f'{", ".join(str(self.processes[name].log_path) for name in forced)}')
        if failed:
            logs = '\n'.join(f'--- {name}\n{self.processes[name].log()[-2000:]}' for name in failed)
            raise GraphFailed(f'{self.graph.name}: {failed} (exit status); see {self.log_dir}\n{logs}')
        return None

    def stop(self) -> dict[str, int]:
        """SIGINT to every node still running (as Ctrl-C), then every node's exit status."""
        for process in self.processes.values():
            process.interrupt()
        for process in self.processes.values():
            process.stop()
        return {name: p.poll() for name, p in self.processes.items()}

    def ctrl_c(self, timeout: float = 30.0) -> dict[str, int]:
        """A terminal Ctrl-C under ros2 launch: SIGINT to every node from the terminal (the process
        group), then launch's own a moment later; every node's exit status."""
        for _ in range(2):
            for process in self.processes.values():
                if process.poll() is None:
                    process.proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        for process in self.processes.values():
            process.interrupted = True
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return {name: p.poll() for name, p in self.processes.items()}

    def logs(self) -> str:
        return '\n'.join(f'--- {name}\n{p.log()[-3000:]}' for name, p in self.processes.items())
