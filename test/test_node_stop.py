"""How a node process is stopped (distill_ros.procs, as `ros2 launch` stops it): SIGINT ends it
cleanly; SIGUSR1 prints where every thread is to its log; one that does not exit after SIGINT is
stopped by force, and says so. A graph run as a stage of work (`GraphProcesses.complete`, as the
demo runs each) fails with the failed node's log, and warns of a node stopped by force."""
from __future__ import annotations

import signal
import time

import pytest
import yaml

from distill_ros.paths import config_path
from distill_ros.procs import STOP_TIMEOUT_S, GraphFailed, GraphProcesses

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
    wait_for_log(sim, 'common.py')                # the spin in nodes/common.run (the dump's end may come later)
    assert sim.poll() is None, sim.log()          # a stack dump, not an exit
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


def test_a_graph_with_a_failed_node_fails_with_its_log(tmp_path):
    with GraphProcesses('sim', {'task': 'no_such_task'}, tmp_path / 'logs') as graph:
        with pytest.raises(GraphFailed, match=r"sim: \{'sim_node': 2\} \(exit status\)") as failure:
            graph.complete(timeout=60)
    assert "unknown task 'no_such_task'" in str(failure.value)   # the end of the node's log


def test_a_node_stopped_by_force_after_the_graph_ended_is_a_warning(tmp_path):
    """The graph's work is done (the simulator and the recorder finished their episode); the
    controller, stuck, is stopped by force: a warning naming it and its log, not a failure."""
    task = yaml.safe_load(config_path('tasks', 'cartpole.yaml').read_text())
    task['env'].update(max_episode_steps=40)   # a 1.6 s episode in real time
    (tmp_path / 'short.yaml').write_text(yaml.safe_dump(task))
    with GraphProcesses('sim_student', {'task': str(tmp_path / 'short.yaml'), 'episodes': 1, 'trigger': 'sensor',
                                        'dataset': str(tmp_path / 'deploy')}, tmp_path / 'logs') as graph:
        controller = graph['student_controller_node']
        wait_for_log(controller, 'active: commanding')
        controller.proc.send_signal(signal.SIGSTOP)   # stuck from here on
        warning = graph.complete(timeout=60 + 2 * STOP_TIMEOUT_S)
    assert controller.forced and controller.poll() == -signal.SIGKILL
    assert warning.startswith('student_controller_node did not exit within 10 s of SIGINT and was stopped by force')
    assert str(controller.log_path) in warning
    assert graph['sim_node'].poll() == graph['recorder_node'].poll() == 0
