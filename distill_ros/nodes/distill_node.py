"""distill_node: the offline distillation job (`distill-ros distill`) as a ROS 2 node.

Parameters (config/distill_node.yaml): the data (`dataset` folder or `bag`), the `teacher`
checkpoint (empty: the task's shipped teacher), the distillation `config` YAML, the `out` folder.
Everything is checked at start (a bad config, a missing dataset or a teacher that does not fit
exits with status 2 before any training). The job runs on a worker thread while the node
publishes its progress on /diagnostics (run, step, validation loss; once per evaluation and
once per second); it writes OUT/student and exits 0, or reports ERROR and exits 1.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from distill_ros.distill.config import ConfigError, load_config
from distill_ros.distill.runner import load_data, run_distill
from distill_ros.nodes import messages as m
from distill_ros.nodes.common import FinishingNode, SubscriptionGate, run
from distill_ros.nodes.params import Param, ParameterError, declare
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.teachers import shipped_teacher

PARAMS = (
    Param('dataset', '', 'dataset folder to distil from (give this or bag)'),
    Param('bag', '', 'rosbag2 bag folder (MCAP or sqlite3) replayed into OUT/dataset first'),
    Param('task', 'cartpole', 'task of the bag, and of the shipped teacher when teacher is empty'),
    Param('teacher', '', 'teacher checkpoint folder; empty: the teacher shipped for the task'),
    Param('config', '', 'distillation YAML; empty: config/distill/default.yaml'),
    Param('out', '', 'output folder (required): OUT/student, OUT/summary.json, OUT/runs/...'),
    Param('resume', False, 'continue an interrupted job in OUT'),
    Param('wait_for_subscribers', 0, 'start the job once /diagnostics is matched with this many subscriptions '
          '(a monitor that must see every report); 0: at once', low=0, high=1000),
)


PROGRESS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class DistillNode(FinishingNode):
    def __init__(self):
        super().__init__('distill_node')
        # The worker is a daemon thread that cannot be stopped mid-step: once the node closes (Ctrl-C),
        # it must touch ROS no more, or it calls into a destroyed node while the process exits.
        self._ros_lock = threading.Lock()
        self.closed = False
        p = declare(self, PARAMS)
        self.params = p
        if not p['out']:
            raise ParameterError("parameter 'out': empty; expected the output folder for the student")
        if bool(p['dataset']) == bool(p['bag']):
            raise ParameterError("parameters 'dataset' and 'bag': give exactly one of them "
                                 f"(got dataset={p['dataset']!r}, bag={p['bag']!r})")
        try:
            self.cfg = load_config(p['config'] or None)
        except (ConfigError, FileNotFoundError) as exc:
            raise ParameterError(f"parameter 'config': {exc}") from exc
        try:
            self.teacher = ckpt_io.load(p['teacher'] or shipped_teacher(p['task']))
        except ckpt_io.CheckpointError as exc:
            raise ParameterError(f"parameter 'teacher': {exc}") from exc
        # Transient local: a monitor that joins late (or a subscription DDS matches only after a
        # short job has begun) still gets the recent progress; volatile subscribers match as well.
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, m.DIAGNOSTICS, PROGRESS)
        self.state = {'phase': 'loading data', 'run': '', 'step': 0, 'val_loss': float('nan')}
        self.level = 'ok'
        self.out = Path(p['out'])
        try:
            self.data = load_data(p['dataset'] or None, p['bag'] or None, self.out, p['task'],
                                  log=self.log)
        except (ValueError, FileNotFoundError) as exc:
            raise ParameterError(f"parameter '{'dataset' if p['dataset'] else 'bag'}': {exc}") from exc
        self.started = time.monotonic()
        self.create_timer(1.0, self.publish_diagnostics)
        self.worker = threading.Thread(target=self.work, name='distill', daemon=True)
        self.worker.start()
        self.get_logger().info(f'distilling {self.teacher.path} on {len(self.data)} samples into {self.out}')

    def on_eval(self, run_name: str, step: int, record: dict) -> None:
        self.state.update(phase='training', run=run_name, step=step, val_loss=record['val_loss'])
        self.publish_diagnostics()

    def work(self) -> None:
        gate = SubscriptionGate(self.diagnostics_pub, self.params['wait_for_subscribers'])
        while not gate.check():
            if self.closed:
                return
            time.sleep(0.05)
        try:
            summary = run_distill(self.data, self.teacher, self.cfg, self.out, resume=self.params['resume'],
                                  progress=False, log=self.log, on_eval=self.on_eval)
            self.state.update(phase='done', student=str(self.out / 'student'))
            if 'eval' in summary:
                self.state['student_return'] = summary['eval'].get('student', summary['eval'].get('offline', {})).get(
                    'mean_return', float('nan'))
            self.publish_diagnostics()
            self.log(f'student written to {self.out / "student"}')
            self.finish(0)
        except Exception as exc:  # noqa: BLE001 - reported on /diagnostics and as the exit status
            self.level = 'error'
            self.state.update(phase='failed', error=str(exc))
            self.publish_diagnostics()
            self.log(f'distillation failed: {exc}\n{traceback.format_exc()}', error=True)
            self.finish(1)

    def log(self, text: str, error: bool = False) -> None:
        with self._ros_lock:
            if not self.closed:
                (self.get_logger().error if error else self.get_logger().info)(text)

    def close(self) -> None:
        """Called by `run` before the node is destroyed."""
        with self._ros_lock:
            self.closed = True

    def publish_diagnostics(self) -> None:
        with self._ros_lock:
            if not self.closed:
                self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        values = {**self.state, 'elapsed_s': round(time.monotonic() - self.started, 1)}
        self.diagnostics_pub.publish(m.diagnostics(
            self.get_clock().now().to_msg(), f'{self.get_name()}: distillation', self.level, str(self.state['phase']),
            self.data.spec.task, values))


def main(args=None) -> None:
    status = run(DistillNode, args)
    worker = next((t for t in threading.enumerate() if t.name == 'distill'), None)
    if worker is not None:
        worker.join(timeout=2.0)  # a worker that has finished its job ends within milliseconds
    if worker is not None and worker.is_alive():
        # Stopped (Ctrl-C) mid-training: Python's finalization would end the worker, a daemon thread
        # inside torch, with pthread_exit through C++ frames, which aborts the process. What it writes
        # (checkpoints, resume state) is written atomically, so end the process here; `--resume`
        # (parameter resume) continues the job.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    raise SystemExit(status)


if __name__ == '__main__':
    main()
