"""Node executables run as processes (what `ros2 launch` does), for the demo and the tests.

Each node is the console script installed beside the running interpreter (`<prefix>/bin/<node>`),
or `python -m distill_ros.nodes.<node>` when there is none. Parameter files and remappings come
first on the command line, then `-p` overrides, so overrides win as in a launch file.
`GraphProcesses` starts a whole graph of distill_ros.graphs, as its launch file does.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from distill_ros.graphs import GRAPHS, ResolvedNode


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

    def stop(self, timeout: float = 10.0) -> None:
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


class GraphProcesses:
    """The nodes of a graph (distill_ros.graphs) started as processes, exactly as
    `ros2 launch distill_ros <graph>.launch.py arg:=value ...` starts them: the same parameter
    files, then the same overrides (in a parameters file, typed as launch types them), the same
    remappings and namespace. It ends as the launch does: `finished()` once every finishing node has
    exited or any node failed; `wait()` then stops the others with SIGINT."""

    def __init__(self, graph: str, arguments: dict, logs: Path, env: dict[str, str] | None = None, tag: str = ''):
        self.graph = GRAPHS[graph]
        self.nodes: list[ResolvedNode] = self.graph.resolve(**arguments)
        logs = Path(logs)
        logs.mkdir(parents=True, exist_ok=True)
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

    def failed(self) -> dict[str, int]:
        """Nodes that exited with a non-zero status, with their status."""
        codes = {name: p.poll() for name, p in self.processes.items()}
        return {name: code for name, code in codes.items() if code not in (None, 0)}

    def finished(self) -> bool:
        """When the launch would shut down: every finishing node exited, or a node failed."""
        finishers = [self.processes[n.name] for n in self.nodes if n.finishes]
        return bool(self.failed()) or bool(finishers) and all(p.poll() is not None for p in finishers)

    def wait(self, timeout: float) -> dict[str, int]:
        """Until `finished()` (TimeoutError after `timeout` s), then SIGINT to the rest; every
        node's exit status."""
        deadline = time.monotonic() + timeout
        while not self.finished():
            if time.monotonic() > deadline:
                raise TimeoutError(f'{self.graph.name}: not finished after {timeout:.0f} s; '
                                   f'logs: {", ".join(str(p.log_path) for p in self.processes.values())}')
            time.sleep(0.1)
        return self.stop()

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
