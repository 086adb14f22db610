"""Node executables run as processes (what `ros2 launch` does), for the demo and the tests.

Each node is the console script installed beside the running interpreter (`<prefix>/bin/<node>`),
or `python -m distill_ros.nodes.<node>` when there is none. Parameter files and remappings come
first on the command line, then `-p` overrides, so overrides win as in a launch file.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # as Ctrl-C or ros2 launch
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
