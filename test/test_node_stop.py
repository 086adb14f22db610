"""How a node process is stopped (distill_ros.procs, as `ros2 launch` stops it): SIGINT ends it
cleanly; SIGUSR1 prints where every thread is to its log; one that does not exit after SIGINT is
stopped by force, and says so."""
from __future__ import annotations

import signal
import time

import pytest

pytest.importorskip('rclpy')


def wait_for_log(process, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.log():
        assert process.poll() is None and time.monotonic() < deadline, process.log()
        time.sleep(0.1)


def test_sigusr1_prints_the_stacks_and_sigint_still_ends_cleanly(start_node):
    sim = start_node('sim_node', {'task': 'cartpole', 'mode': 'realtime', 'randomize': False})
    wait_for_log(sim, 'sim_node')
    sim.proc.send_signal(signal.SIGUSR1)
    wait_for_log(sim, 'most recent call first')
    assert sim.poll() is None, sim.log()          # a stack dump, not an exit
    assert 'common.py' in sim.log()               # the spin in nodes/common.run
    sim.stop()
    assert sim.poll() == 0 and not sim.forced, sim.log()


def test_a_node_that_does_not_exit_after_sigint_is_stopped_by_force(start_node):
    sim = start_node('sim_node', {'task': 'cartpole', 'mode': 'realtime', 'randomize': False})
    wait_for_log(sim, 'sim_node')
    sim.proc.send_signal(signal.SIGSTOP)          # stuck: handles no signal but SIGKILL
    started = time.monotonic()
    sim.stop(timeout=1.0)
    assert sim.forced and sim.poll() == -signal.SIGKILL
    assert time.monotonic() - started < 15
