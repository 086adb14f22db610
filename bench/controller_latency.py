#!/usr/bin/env python3
"""Student controller timing over ROS 2 loopback, next to the raw DDS round trip of the same run.

This script is the robot driver: it publishes joint_states + imu/data (the shipped cartpole
student's sensors) from a thread on absolute deadlines, each stamped with the wall clock at
publication, and receives the controller's stamped JointState commands (joint_commands, which
carry the stamp of the sample they answer): latency = receipt - stamp, a full round trip
driver -> controller -> driver. The floor is an echo process that answers every joint_states
message with a JointState on the same topic: the same two DDS hops with no controller in between.
Loop figures (period jitter, lateness, deadline misses, inference time) come from the
controller's own /diagnostics at the end of each run.

Runs (each --duration seconds):
  echo                  raw DDS round trip at 500 Hz (the floor)
  sensor 500 Hz         trigger sensor: the policy runs as soon as a sample is complete
  timer 200/500 Hz      trigger timer: the loop thread on absolute deadlines; latency includes the
                        wait for the next deadline (up to one period)
each with and without SCHED_FIFO (reported as fallen back when refused).

    python bench/controller_latency.py                  # 60 s per run (~8 min)
    python bench/controller_latency.py --duration 5     # quick look
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from distill_ros.stamps import sec_nanosec, stamp_ns

os.environ.setdefault('ROS_DOMAIN_ID', '83')
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

ECHO, BARE = 'echo', 'bare'


def echo_main(fifo: bool) -> None:
    """The floor: answer each joint_states with a JointState carrying its stamp."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from distill_ros.nodes.common import RELIABLE, SENSOR_DATA
    rclpy.init()
    node = rclpy.create_node('bench_echo')
    pub = node.create_publisher(JointState, 'joint_commands', RELIABLE)

    def on(msg: JointState) -> None:
        pub.publish(JointState(header=msg.header, name=['slider'], position=[0.0]))
    node.create_subscription(JointState, 'joint_states', on, SENSOR_DATA)
    if fifo:  # as the controller with sched_fifo: every thread of the process
        from distill_ros.control.timing import fifo_other_threads
        fifo_other_threads(79)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


def bare_loop(rate: float, duration: float, fifo: bool) -> dict:
    """The deadline loop alone with an empty tick, in a fresh process: what the machine allows."""
    import json
    cmd = [sys.executable, __file__, '--bare', str(rate), '--duration', str(duration)] + (['--fifo'] if fifo else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bare_main(rate: float, duration: float, fifo: bool) -> None:
    import json

    from distill_ros.control.timing import LoopStats, RealtimeLoop
    stats = LoopStats(window=int(rate * duration) + 1000)
    loop = RealtimeLoop(1.0 / rate, lambda deadline, start: None, stats, fifo_priority=80 if fifo else 0)
    loop.start()
    time.sleep(duration)
    loop.stop()
    print(json.dumps({'jitter_p99_us': f'{stats.jitter_p99() * 1e6:.1f}',
                      'jitter_max_us': f'{stats.max_period_error * 1e6:.1f}',
                      'lateness_max_us': f'{stats.max_lateness * 1e6:.1f}',
                      'deadline_misses': str(stats.deadline_misses),
                      'skipped_deadlines': str(stats.skipped), 'sched_fifo': loop.fifo_message}))


def start_process(kind: str, params: dict) -> subprocess.Popen:
    if kind == ECHO:
        cmd = [sys.executable, __file__, '--echo'] + (['--fifo'] if params.get('sched_fifo') == 'true' else [])
    else:
        beside = Path(sys.executable).parent / 'student_controller_node'
        cmd = [str(beside)] if beside.is_file() else [sys.executable, '-m', 'distill_ros.nodes.student_controller_node']
        cmd += ['--ros-args'] + [a for k, v in params.items() for a in ('-p', f'{k}:={v}')]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_process(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read() if proc.stdout else ''


class Driver:
    """Publishes sensors on deadlines and records command receipt latencies."""

    def __init__(self, fifo: bool):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Imu, JointState

        from distill_ros.nodes import messages as m
        from distill_ros.nodes.common import RELIABLE, RELIABLE_DEEP
        from distill_ros.sim import SENSOR, DistillEnv
        rclpy.init()
        self.node = rclpy.create_node('bench_driver')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        env = DistillEnv('cartpole', randomize=False)
        obs, _ = env.reset(seed=0)
        reading = env.sensor_builder.reading(obs[SENSOR])
        env.close()
        self.joint_msg, self.imu_msg = m.joint_state(reading, 0), m.imu(reading, 0, 'imu_link')
        self.joint_pub = self.node.create_publisher(JointState, 'joint_states', RELIABLE)
        self.imu_pub = self.node.create_publisher(Imu, 'imu/data', RELIABLE)
        self.latencies: list[int] = []
        self.pending: dict[int, bool] = {}
        self.recording = False
        self.diagnostics: dict[str, str] = {}
        self.node.create_subscription(JointState, 'joint_commands', self.on_command, RELIABLE_DEEP)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics, RELIABLE_DEEP)
        # The measuring side should not be what a loaded machine delays: every thread of this process
        # (DDS, executor) and its publishing loop at SCHED_FIFO where that is allowed.
        self.fifo_priority = 0
        self.fifo_message = 'normal scheduler'
        if fifo:
            from distill_ros.control.timing import fifo_other_threads, request_fifo
            granted, self.fifo_message = request_fifo(70)
            if granted:
                fifo_other_threads(70)
                self.fifo_priority = 70

    def on_command(self, msg) -> None:
        now = time.time_ns()
        stamp = stamp_ns(msg.header.stamp)
        # The first command answering each sample sent in this run (repeats and safe actions carry
        # an older stamp or the controller's clock).
        if self.recording and self.pending.pop(stamp, None) is not None:
            self.latencies.append(now - stamp)

    def on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if 'control loop' in status.name:
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def spin_for(self, seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if until is not None and until():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return until() if until is not None else True

    def publish(self, deadline_ns: int, start_ns: int) -> None:
        now = time.time_ns()
        self.pending[now] = True
        for msg in (self.joint_msg, self.imu_msg):
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec_nanosec(now)
        self.joint_pub.publish(self.joint_msg)
        self.imu_pub.publish(self.imu_msg)
        self.sent += 1

    def run(self, rate: float, duration: float, proc: subprocess.Popen, controller: bool) -> dict:
        from distill_ros.control.timing import LoopStats, RealtimeLoop
        self.latencies, self.diagnostics, self.sent = [], {}, 0
        # Warm up: publish until commands come back (the controller configures and activates).
        warm = RealtimeLoop(1.0 / rate, self.publish, LoopStats(), fifo_priority=self.fifo_priority)
        warm.start()
        self.recording = True
        ok = self.spin_for(60, lambda: len(self.latencies) > 50 or proc.poll() is not None)
        warm.stop()
        if not ok or proc.poll() is not None:
            raise RuntimeError(f'no commands came back: {stop_process(proc)[-3000:]}')
        self.spin_for(1.0)
        self.latencies, self.sent, self.pending = [], 0, {}
        stats = LoopStats()
        loop = RealtimeLoop(1.0 / rate, self.publish, stats, fifo_priority=self.fifo_priority)
        loop.start()
        self.spin_for(duration)
        if controller:  # the newest loop figures, while sensors still flow
            self.diagnostics = {}
            self.spin_for(3.0, lambda: bool(self.diagnostics))
        loop.stop()
        self.recording = False
        self.spin_for(0.3)
        lat = np.array(self.latencies, dtype=np.float64) / 1000.0
        return {'latency': lat, 'sent': self.sent, 'driver_jitter_p99': stats.jitter_p99() * 1e6,
                'diagnostics': dict(self.diagnostics)}


def inference_table(calls: int, students: list[str]) -> None:
    """Each backend on each student (window MLP and recurrent alike), batch 1, one thread, in this
    process. A recurrent student's call is one tick: one step row in, the state carried inside."""
    from rich.console import Console
    from rich.table import Table

    from distill_ros.control.inference import BACKENDS, BackendError, load_backend, time_backend
    from distill_ros.distill.report import _memory
    from distill_ros.policies import checkpoint as ckpt_io
    from distill_ros.policies.export import example_input
    from distill_ros.policies.mlp import parameter_count
    from distill_ros.students import shipped_student
    table = Table(title=f'inference per tick, batch 1, 1 thread, {calls} calls')
    for col in ('student', 'input', 'parameters', 'backend', 'p50 us', 'p99 us', 'max us'):
        table.add_column(col, justify='left' if col in ('student', 'input', 'backend') else 'right')
    for name in students:
        path = shipped_student(name) if '/' not in name else name
        ckpt = ckpt_io.load(path)
        window = np.ascontiguousarray(example_input(ckpt)[0].numpy())
        for kind in (b for b in BACKENDS if b != 'auto'):
            try:
                backend = load_backend(ckpt, kind)
            except BackendError:
                continue   # e.g. numpy runs MLP students only
            t = time_backend(backend, window, calls) * 1e6
            table.add_row(name, _memory(ckpt), f'{parameter_count(ckpt.model):,}', kind, f'{np.percentile(t, 50):.1f}',
                          f'{np.percentile(t, 99):.1f}', f'{t.max():.0f}')
    Console(width=200).print(table)


def _available(student: str) -> bool:
    from distill_ros.students import shipped_student
    try:
        shipped_student(student) if '/' not in student else None
        return True
    except (FileNotFoundError, ValueError):
        print(f'no shipped {student} student: left out of the inference table')
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration', type=float, default=60.0, help='seconds per run')
    parser.add_argument('--backend', default='auto', help='controller inference backend')
    parser.add_argument('--runs', default='bare500,bare500fifo,echo,echofifo,sensor500,sensor500fifo,timer200,'
                        'timer200fifo,timer500,timer500fifo',
                        help='comma-separated subset of the runs')
    parser.add_argument('--inference-calls', type=int, default=20000,
                        help='policy calls per backend in the in-process inference table (0: skip it)')
    parser.add_argument('--students', nargs='*', default=['cartpole', 'hopper'],
                        help='students of the inference table: shipped names or checkpoint folders')
    parser.add_argument('--checkpoint', default='cartpole',
                        help='the controller\'s student in the runs over ROS 2 (a cartpole student: the driver '
                             'publishes cartpole sensors)')
    parser.add_argument('--driver-normal', action='store_true',
                        help='keep this process (the driver) on the normal scheduler even where SCHED_FIFO is allowed')
    parser.add_argument('--echo', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--fifo', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--bare', type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        echo_main(args.fifo)
        return
    if args.bare:
        bare_main(args.bare, args.duration, args.fifo)
        return
    from rich.console import Console
    from rich.table import Table

    runs = {
        'echo': (ECHO, 500.0, {'sched_fifo': 'false'}),
        'echofifo': (ECHO, 500.0, {'sched_fifo': 'true'}),
        'bare500': (BARE, 500.0, {'sched_fifo': 'false'}),
        'bare500fifo': (BARE, 500.0, {'sched_fifo': 'true'}),
        'sensor500': ('sensor', 500.0, {'sched_fifo': 'false'}),
        'sensor500fifo': ('sensor', 500.0, {'sched_fifo': 'true'}),
        'timer200': ('timer', 200.0, {'sched_fifo': 'false'}),
        'timer200fifo': ('timer', 200.0, {'sched_fifo': 'true'}),
        'timer500': ('timer', 500.0, {'sched_fifo': 'false'}),
        'timer500fifo': ('timer', 500.0, {'sched_fifo': 'true'}),
    }
    chosen = [r.strip() for r in args.runs.split(',') if r.strip()]
    unknown = [r for r in chosen if r not in runs]
    if unknown:
        parser.error(f'unknown runs {unknown}; expected some of {list(runs)}')
    load_before = os.getloadavg()
    if args.inference_calls:
        inference_table(args.inference_calls, [s for s in args.students if _available(s)])
    driver = Driver(fifo=not args.driver_normal)
    print(f'driver: {driver.fifo_message}', flush=True)
    rows = []
    for name in chosen:
        trigger, rate, extra = runs[name]
        params = {'checkpoint': args.checkpoint, 'backend': args.backend,
                  'trigger': trigger if trigger != ECHO else 'timer',
                  'control_rate_hz': rate, 'auto_activate': 'true', 'publish_joint_commands': 'true',
                  'sensor_timeout': 0.5, 'sensor_check_timeout': 30.0, 'diagnostics_period': 1.0,
                  'stats_window': int(rate * args.duration) + 1000, **extra}
        if trigger == BARE:
            result = {'latency': np.array([]), 'sent': 0,
                      'diagnostics': bare_loop(rate, args.duration, extra['sched_fifo'] == 'true')}
            log = ''
        else:
            proc = start_process(trigger, params)
            try:
                result = driver.run(rate, args.duration, proc, controller=trigger != ECHO)
            finally:
                log = stop_process(proc)
        result.update(name=name, trigger=trigger, rate=rate, fifo=extra.get('sched_fifo') == 'true', log=log)
        rows.append(result)
        lat = result['latency']
        if lat.size:
            print(f'{name}: {lat.size} commands for {result["sent"]} samples, round trip p50 '
                  f'{np.percentile(lat, 50):.0f} p99 {np.percentile(lat, 99):.0f} max {lat.max():.0f} us', flush=True)
        else:
            print(f'{name}: {result["diagnostics"]}', flush=True)
    load_after = os.getloadavg()

    table = Table(title=f'student controller over ROS 2 loopback, {args.duration:g} s per run, backend {args.backend}')
    for col in ('run', 'rate Hz', 'SCHED_FIFO', 'round trip p50/p99/max us', 'in-node p99 us', 'jitter p99/max us',
                'late max us', 'misses >1ms', 'skipped', 'inference p50/p99 us', 'answered'):
        table.add_column(col, justify='right' if col not in ('run', 'SCHED_FIFO') else 'left')
    for r in rows:
        lat, d = r['latency'], r['diagnostics']
        fifo = 'yes' if r['fifo'] else 'no'
        if r['trigger'] != ECHO and r['fifo'] and 'granted' not in d.get('sched_fifo', ''):
            fifo = 'fell back'
        label = {ECHO: 'echo (raw DDS)', BARE: 'bare loop (no ROS)'}.get(r['trigger'], f"{r['trigger']} trigger")
        table.add_row(
            label, f"{r['rate']:g}", fifo,
            f'{np.percentile(lat, 50):.0f} / {np.percentile(lat, 99):.0f} / {lat.max():.0f}' if lat.size else '-',
            d.get('latency_p99_us', '-'),
            f"{d.get('jitter_p99_us', '-')} / {d.get('jitter_max_us', '-')}" if d else '-',
            d.get('lateness_max_us', '-'), d.get('deadline_misses', '-'), d.get('skipped_deadlines', '-'),
            f"{d.get('inference_p50_us', '-')} / {d.get('inference_p99_us', '-')}" if d else '-',
            f"{lat.size}/{r['sent']}" if r['sent'] else '-')
    Console(width=200).print(table)
    print(f'driver (this process): {driver.fifo_message}')
    print(f'load average before {load_before[0]:.2f} {load_before[1]:.2f}, after {load_after[0]:.2f} '
          f'{load_after[1]:.2f} on {os.cpu_count()} CPUs; command: {" ".join(sys.argv)}')
    print('round trip: driver publishes joint_states+imu stamped with the wall clock -> controller -> stamped '
          'JointState back; in sensor trigger mode it includes waiting for the imu message. in-node: arrival of the '
          'newest sample to publication. jitter: tick interval minus period (timer trigger: the loop thread; sensor '
          'trigger: the watchdog loop). Misses: ticks > 1 ms late.')
    import rclpy
    driver.node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    threading.current_thread().name = 'bench'
    main()
