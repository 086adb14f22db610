"""`distill-ros demo`: the whole pipeline on one task, over real ROS 2 topics, in a few minutes.

  1. record   sim_node (lockstep) + teacher_node + recorder_node: the privileged teacher drives the
              simulator over topics; the recorder builds a dataset (and a bag with --keep-bag)
  2. distil   behavioural cloning + logit (Gaussian KL) + feature matching, in-process
  3. DAgger   one round over topics: student_controller_node drives sim_node, teacher_node labels
              every visited state, recorder_node records; the student is retrained on all data
  4. deploy   student_controller_node drives sim_node over topics (the robot-side path)
  5. report   teacher vs students on the same held-out randomized episodes: table + plots

Every node runs as its own process (as `ros2 launch` would start them) in a private DDS domain on
localhost, so the demo neither sees nor disturbs other ROS 2 systems on the network.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np

from distill_ros.paths import share_dir
from distill_ros.procs import NodeProcess

RECORDED = {'/sim/step': 1, '/privileged/state': 1, '/joint_states': 1, '/imu/data': 1,
            '/teacher/action': 1, '/teacher/distribution': 1}


class Demo:
    def __init__(self, args: argparse.Namespace):
        from rich.console import Console
        self.args = args
        self.console = Console()
        self.out = Path(args.out)
        self.logs = self.out / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.config = share_dir() / 'config'
        # 0..101 keeps the DDS ports out of Linux's ephemeral range (ROS 2's advice)
        domain = args.domain_id if args.domain_id is not None else random.randint(60, 101)
        self.env = {**os.environ, 'ROS_DOMAIN_ID': str(domain), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
        os.environ.update({k: self.env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
        self.processes: list[NodeProcess] = []
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}
        import rclpy
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('distill_ros_demo', context=self.context)
        self.console.print(f'[bold]distill_ros demo[/bold]: task {args.task}, output in {self.out} '
                           f'(ROS_DOMAIN_ID {domain}, localhost only; node logs in {self.logs})')

    # ------------------------------------------------------------------ processes
    def start(self, executable: str, params: dict, params_file: str | None = None,
              remap: list[str] | None = None, tag: str = '') -> NodeProcess:
        ros_args = (['--params-file', str(self.config / params_file)] if params_file else []) + (remap or [])
        log = self.logs / f'{tag or ""}{executable}.log'
        process = NodeProcess(executable, params, log, ros_args, env=self.env)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes.clear()

    def wait_for_graph(self, count, topics: dict[str, int], what: str, timeout: float = 60.0) -> None:
        """Until `count(topic)` (the graph's subscribers or publishers) reaches each number, then a
        second for the matches to complete."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if all(count(t) >= n for t, n in topics.items()):
                time.sleep(1.0)
                return
            time.sleep(0.1)
        found = {t: count(t) for t in topics}
        raise RuntimeError(f'{what} did not appear in {timeout:.0f} s: {found}, expected {topics}; see {self.logs}')

    def wait_for_subscribers(self, topics: dict[str, int]) -> None:
        self.wait_for_graph(self.node.count_subscribers, topics, 'subscribers')

    def wait_for_publishers(self, topics: dict[str, int]) -> None:
        self.wait_for_graph(self.node.count_publishers, topics, 'publishers')

    def check_alive(self, allowed_done: tuple[str, ...] = ()) -> None:
        for process in self.processes:
            code = process.poll()
            if code is not None and not (code == 0 and process.executable in allowed_done):
                raise RuntimeError(f'{process.executable} exited with status {code}:\n{process.log()[-2000:]}')

    def record(self, folder: Path, episodes: int, what: str, timeout: float) -> None:
        """Wait for the recorder to finish `episodes`, with a progress bar on its manifest."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        recorder = next(p for p in self.processes if p.executable == 'recorder_node')
        deadline = time.monotonic() + timeout
        with Progress(TextColumn('  {task.description}'), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True) as progress:
            bar = progress.add_task(what, total=episodes)
            while recorder.poll() is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f'{what}: not finished after {timeout:.0f} s; see {self.logs}')
                self.check_alive(allowed_done=('sim_node', 'recorder_node'))
                manifest = folder / 'manifest.json'
                if manifest.is_file():
                    try:
                        progress.update(bar, completed=len(json.loads(manifest.read_text())['episodes']))
                    except (json.JSONDecodeError, KeyError):
                        pass
                time.sleep(0.25)
        if recorder.poll() != 0:
            raise RuntimeError(f'recorder_node exited with status {recorder.poll()}:\n{recorder.log()[-2000:]}')

    def step(self, title: str) -> float:
        self.console.rule(f'[bold]{title}')
        return time.monotonic()

    def done(self, name: str, since: float) -> None:
        self.timings[name] = time.monotonic() - since
        self.console.print(f'  done in {self.timings[name]:.0f} s')

    # ------------------------------------------------------------------ the pipeline
    def run(self) -> Path:
        from distill_ros.data.dataset import load_dataset
        from distill_ros.distill.config import load_config
        from distill_ros.distill.runner import run_distill
        from distill_ros.distill.trainer import concat_datasets, train_student
        from distill_ros.policies import checkpoint as ckpt_io
        from distill_ros.policies.teachers import shipped_teacher

        args = self.args
        task = args.task
        teacher_path = Path(args.teacher) if args.teacher else shipped_teacher(task)
        teacher = ckpt_io.load(teacher_path)

        # 1. record
        t0 = self.step(f'1/5 record: teacher drives sim_node over ROS 2 topics ({args.episodes} episodes)')
        data_dir = self.out / 'data'
        params = {'task': task, 'dataset': str(data_dir), 'max_episodes': args.episodes}
        if args.keep_bag:
            params['bag'] = str(self.out / 'bag')
        self.start('recorder_node', params, 'recorder.yaml')
        self.start('sim_node', {'task': task, 'mode': 'lockstep', 'command_type': 'JointState',
                                'max_episodes': args.episodes, 'seed': args.seed}, 'sim.yaml',
                   ['-r', 'commands:=teacher/action'])
        self.wait_for_subscribers({**RECORDED, '/teacher/action': 2})
        # Sampled teacher actions (its own Gaussian): the teacher visits and labels states off its
        # nominal path, which teaches the student to recover (DART; docs/methods.md).
        self.start('teacher_node', {'task': task, 'checkpoint': str(teacher_path), 'deterministic': False,
                                    'seed': args.seed, 'wait_for_subscribers': 2}, 'teacher.yaml')
        self.record(data_dir, args.episodes, 'recording teacher episodes', timeout=60 + 30 * args.episodes)
        self.stop_all()
        data = load_dataset(data_dir)
        self.console.print(f'  dataset {data_dir}: {len(data.episode_starts)} episodes, {len(data)} samples'
                           + (f'; bag {self.out / "bag"}' if args.keep_bag else ''))
        self.done('record', t0)

        # 2. distil offline
        t0 = self.step('2/5 distil: behavioural cloning + logit matching + feature matching')
        task_config = self.config / 'distill' / f'{task}.yaml'
        config = args.config or (task_config if task_config.is_file() else None)
        cfg = load_config(config, {'dagger': {'rounds': 0}, 'eval': {'episodes': 0}})
        distill_dir = self.out / 'distill'
        run_distill(data, teacher, cfg, distill_dir, log=lambda s: self.console.print(f'  {s}'))
        offline = ckpt_io.load(distill_dir / 'student')
        self.done('distil', t0)

        # 3. one DAgger round over topics
        t0 = self.step(f'3/5 DAgger: the student drives sim_node, the teacher labels ({args.dagger_episodes} '
                       f'episodes)')
        dagger_dir = self.out / 'dagger_round1'
        self.drive_with_student(distill_dir / 'student', dagger_dir, args.dagger_episodes, seed=500_000 + args.seed,
                                teacher_path=teacher_path, what='student episodes, teacher labelling', realtime=False)
        aggregate = concat_datasets([data, load_dataset(dagger_dir)])
        self.console.print(f'  retraining on {len(aggregate)} aggregated samples')
        student = train_student(aggregate, teacher, cfg, distill_dir, run='dagger1', init=offline,
                                steps=cfg.dagger.steps_per_round)
        ckpt_io.save(student, self.out / 'student')
        self.done('dagger', t0)

        # 4. deploy over topics
        t0 = self.step(f'4/5 deploy: student_controller_node drives sim_node ({args.deploy_episodes} episodes)')
        deploy_dir = self.out / 'deploy'
        self.drive_with_student(self.out / 'student', deploy_dir, args.deploy_episodes, seed=1_000_000,
                                teacher_path=None, what='student episodes over topics', realtime=True)
        deployed = load_dataset(deploy_dir)
        topic_returns = [float(deployed.episode(i)['reward'].sum()) for i in range(len(deployed.episode_starts))]
        self.console.print(f'  returns over topics: {", ".join(f"{r:.0f}" for r in topic_returns)}')
        self.done('deploy', t0)

        # 5. report
        t0 = self.step(f'5/5 report: teacher vs students on {args.eval_episodes} held-out randomized episodes')
        report = self.report(teacher, {'student (BC+KL+feature)': offline, 'student (+1 DAgger round)': student},
                             topic_returns, distill_dir / 'learning_curve.jsonl')
        self.done('report', t0)
        total = time.monotonic() - self.started
        self.console.print(f'[bold green]demo finished in {total / 60:.1f} min[/bold green]; report: {report}')
        return report

    def drive_with_student(self, checkpoint: Path, folder: Path, episodes: int, seed: int,
                           teacher_path: Path | None, what: str, realtime: bool) -> None:
        """student_controller_node drives sim_node: in real time on its own clock (as on a robot), or
        in lockstep answering each observation (trigger sensor: the same data, faster than real time)."""
        task = self.args.task
        recorder = {'task': task, 'dataset': str(folder), 'max_episodes': episodes,
                    'teacher': teacher_path is not None}
        self.start('recorder_node', recorder, 'recorder.yaml', tag=f'{folder.name}_')
        topics = {'/sim/step': 1, '/joint_states': 2, '/imu/data': 2}
        if teacher_path is not None:
            self.start('teacher_node', {'task': task, 'checkpoint': str(teacher_path)}, 'teacher.yaml',
                       tag=f'{folder.name}_')
            topics.update({'/privileged/state': 2, '/teacher/action': 1, '/teacher/distribution': 1})
        # The controller activates before the simulator starts (no sensor check at configure), so a
        # real-time simulator never runs uncommanded.
        # trigger sensor: the command answers each observation within about a millisecond, as the
        # student was trained (a timer at the same 25 Hz would add up to one step of latency).
        self.start('student_controller_node', {'checkpoint': str(checkpoint), 'auto_activate': True,
                                               'sensor_check_timeout': 0.0, 'trigger': 'sensor',
                                               # lockstep: the simulator waits for us; slow is not stale
                                               'sensor_timeout': 0.1 if realtime else 5.0,
                                               'publish_joint_commands': not realtime,
                                               'episode_topic': 'sim/episode'},
                   'student_controller.yaml', tag=f'{folder.name}_')
        self.wait_for_subscribers(topics)
        self.wait_for_publishers({'/commands' if realtime else '/joint_commands': 1})
        # Lockstep takes only commands stamped with the observation they answer (JointState on
        # joint_commands), so the controller's safe actions while it waits never step the simulator.
        self.start('sim_node', {'task': task, 'mode': 'realtime' if realtime else 'lockstep',
                                'command_type': 'Float64MultiArray' if realtime else 'JointState',
                                'max_episodes': episodes, 'seed': seed,
                                'wait_for_subscribers': topics['/joint_states'], 'lockstep_timeout': 30.0},
                   'sim.yaml', [] if realtime else ['-r', 'commands:=joint_commands'], tag=f'{folder.name}_')
        self.record(folder, episodes, what, timeout=60 + 2 * self.episode_seconds() * episodes)
        self.stop_all()

    def episode_seconds(self) -> float:
        """Wall time of a full-length episode in real-time mode."""
        from distill_ros.sim import DistillEnv
        env = DistillEnv(self.args.task)
        try:
            return env.dt * env.task.max_episode_steps
        finally:
            env.close()

    def report(self, teacher, students: dict, topic_returns: list[float], curve: Path) -> Path:
        from distill_ros.distill.report import evaluate_policies, write_report
        rows = evaluate_policies(self.args.task, teacher, students, self.args.eval_episodes)
        report_dir = self.out / 'report'
        path = write_report(rows, report_dir, [curve], title=f'distill_ros demo on {self.args.task}')
        with open(path, 'a') as f:
            f.write(f'\n## Over ROS 2 topics\n\nThe final student drove sim_node (real-time mode) through '
                    f'student_controller_node for {len(topic_returns)} episodes: returns '
                    f'{", ".join(f"{r:.0f}" for r in topic_returns)} (mean {np.mean(topic_returns):.1f}).\n\n'
                    f'Stage times: ' + ', '.join(f'{k} {v:.0f} s' for k, v in self.timings.items()) + '.\n')
        return path

    def close(self) -> None:
        self.stop_all()
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


def cmd_demo(args: argparse.Namespace) -> int:
    demo = Demo(args)
    try:
        demo.run()
    except RuntimeError as exc:
        demo.console.print(f'[bold red]demo failed:[/bold red] {exc}')
        return 1
    finally:
        demo.close()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('demo', help='the whole pipeline over ROS 2 topics on a built-in task (minutes)')
    p.add_argument('--task', default='cartpole', help='cartpole (default, minutes), hopper or ant (each has a '
                   'shipped teacher; longer)')
    p.add_argument('--teacher', help='teacher checkpoint (default: the shipped teacher of the task)')
    p.add_argument('--config', help='distillation YAML (default: config/distill/<task>.yaml where there is one, '
                   'else config/distill/default.yaml)')
    p.add_argument('--out', default='demo_out', help='output folder (default: demo_out)')
    p.add_argument('--episodes', type=int, default=10, help='teacher episodes to record')
    p.add_argument('--dagger-episodes', type=int, default=4, help='episodes of the DAgger round')
    p.add_argument('--deploy-episodes', type=int, default=2, help='episodes the deployed student drives')
    p.add_argument('--eval-episodes', type=int, default=20, help='held-out episodes in the report')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--keep-bag', action='store_true', help='also write the recording as a rosbag2 (MCAP) bag')
    p.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID for the demo (default: a random free-ish one)')
    p.set_defaults(func=cmd_demo)
