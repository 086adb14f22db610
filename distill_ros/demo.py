"""`distill-ros demo`: the whole pipeline on one task, over real ROS 2 topics, in a few minutes.

  1. record   sim_teacher_record.launch.py's graph: the privileged teacher drives sim_node (lockstep)
              over topics; recorder_node builds a dataset (and a bag with --keep-bag)
  2. distil   the task config's losses (cartpole: behavioural cloning + logit (Gaussian KL) + feature
              matching), in-process; and the naive student (behavioural cloning on the current sensor
              reading only) to measure against
  3. DAgger   one round over topics, dagger.launch.py's graph: student_controller_node drives
              sim_node, teacher_node labels every visited state, recorder_node records; the student
              is retrained on all data, as `distill-ros distill` retrains it after a DAgger round
  4. deploy   sim_student.launch.py's graph: student_controller_node drives sim_node in real time
              (the robot-side path), recorder_node records the returns
  5. report   teacher vs students on the same held-out randomized episodes: table + plots

Each graph is started from its description in distill_ros/graphs.py, the one its launch file uses:
every node its own process, with the same parameter files, parameters and remappings as under
`ros2 launch`, in a private DDS domain on localhost, so the demo neither sees nor disturbs other
ROS 2 systems on the network. distill_ros.procs starts, waits for and stops those processes; this
module is the pipeline only, and imports no rclpy.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from distill_ros.data.dataset import Dataset, load_dataset
from distill_ros.distill.config import DistillConfig, load_config
from distill_ros.distill.dagger import episode_returns
from distill_ros.distill.report import evaluate_policies, write_report
from distill_ros.distill.run_files import LEARNING_CURVE
from distill_ros.distill.runner import run_distill, train_dagger_round
from distill_ros.distill.seeds import DAGGER_SEED_BASE, EVAL_SEED_BASE
from distill_ros.distill.trainer import concat_datasets, train_student
from distill_ros.paths import share_dir
from distill_ros.policies import checkpoint as ckpt_io
from distill_ros.policies.checkpoint import Checkpoint
from distill_ros.procs import GraphProcesses, localhost_env
from distill_ros.teachers import add_teacher_option, teacher_folder


class Demo:
    """The pipeline (`run`), one short method per stage, around what they share: the console, the
    output folder, the ROS 2 environment every graph runs in, and the stage times."""

    def __init__(self, args: argparse.Namespace):
        from rich.console import Console
        self.args = args
        self.console = Console()
        self.out = Path(args.out)
        self.logs = self.out / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = localhost_env(args.domain_id)
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}
        self.console.print(f'[bold]distill_ros demo[/bold]: task {args.task}, output in {self.out} '
                           f'(ROS_DOMAIN_ID {self.env["ROS_DOMAIN_ID"]}, localhost only; node logs in {self.logs})')

    # ------------------------------------------------------------------ the pipeline
    def run(self) -> Path:
        """record -> distil -> DAgger over topics -> deploy -> report; the report's path."""
        args = self.args
        teacher_path = teacher_folder(args.teacher, args.task)
        teacher = ckpt_io.load(teacher_path)
        cfg = demo_config(args)   # checked before anything runs: a bad config costs no recording
        data = self.record(teacher_path)
        offline, naive = self.distil(data, teacher, cfg)
        student = self.dagger(data, teacher, cfg, offline, teacher_path)
        topic_returns = self.deploy()
        report = self.report(teacher, {'naive student (BC, current reading only)': naive,
                                       f'student ({loss_names(cfg)})': offline, 'student (+1 DAgger round)': student},
                             cfg, topic_returns)
        total = time.monotonic() - self.started
        self.console.print(f'[bold green]demo finished in {total / 60:.1f} min[/bold green]; report: {report}')
        return report

    def record(self, teacher_path: Path) -> Dataset:
        """1. sim_teacher_record.launch.py's graph. Sampled teacher actions (its own Gaussian): the
        teacher visits and labels states off its nominal path, which teaches the student to recover
        (DART; docs/methods.md)."""
        args, data_dir = self.args, self.out / 'data'
        with self.stage('record', f'1/5 record: teacher drives sim_node over ROS 2 topics ({args.episodes} episodes)'):
            self.run_graph('sim_teacher_record', 'recording teacher episodes', timeout=60 + 30 * args.episodes,
                           task=args.task, episodes=args.episodes, seed=args.seed, dataset=str(data_dir),
                           bag=str(self.out / 'bag') if args.keep_bag else '', teacher_checkpoint=str(teacher_path),
                           teacher_deterministic=False)
            data = load_dataset(data_dir)
            self.console.print(f'  dataset {data_dir}: {len(data.episode_starts)} episodes, {len(data)} samples'
                               + (f'; bag {self.out / "bag"}' if args.keep_bag else ''))
        return data

    def distil(self, data: Dataset, teacher: Checkpoint, cfg: DistillConfig) -> tuple[Checkpoint, Checkpoint]:
        """2. The task config's losses, in-process (the `distill-ros distill` job); and the naive
        student to measure against. (offline student, naive student)"""
        distill_dir = self.out / 'distill'
        with self.stage('distil', f'2/5 distil: {loss_names(cfg)} ({cfg.student.type} on {cfg.student.history} '
                                  f'steps), and the naive student'):
            run_distill(data, teacher, cfg, distill_dir, log=lambda s: self.console.print(f'  {s}'))
            offline = ckpt_io.load(distill_dir / 'student')
            self.console.print('  naive student: behavioural cloning on the current sensor reading only')
            naive = train_naive_student(data, teacher, cfg, distill_dir)
        return offline, naive

    def dagger(self, data: Dataset, teacher: Checkpoint, cfg: DistillConfig, offline: Checkpoint,
               teacher_path: Path) -> Checkpoint:
        """3. One DAgger round over topics, dagger.launch.py's graph (the student answers each
        observation in lockstep, the teacher labels), then the runner's retraining of round 1 on
        the recording and the round's data together; the result is OUT/student."""
        args, round_dir = self.args, self.out / 'dagger_round1'
        with self.stage('dagger', f'3/5 DAgger: the student drives sim_node, the teacher labels '
                                  f'({args.dagger_episodes} episodes)'):
            self.run_graph('dagger', 'student episodes, teacher labelling', timeout=60 + 30 * args.dagger_episodes,
                           task=args.task, student=str(self.out / 'distill' / 'student'), episodes=args.dagger_episodes,
                           seed=DAGGER_SEED_BASE + args.seed, dataset=str(round_dir),
                           teacher_checkpoint=str(teacher_path))
            aggregate = concat_datasets([data, load_dataset(round_dir)])
            self.console.print(f'  retraining on {len(aggregate)} aggregated samples')
            student = train_dagger_round(aggregate, teacher, cfg, self.out / 'distill', offline, k=1)
            ckpt_io.save(student, self.out / 'student')
        return student

    def deploy(self) -> list[float]:
        """4. sim_student.launch.py's graph, recording: the simulator in real time, the controller
        answering each sample within about a millisecond, as the student was trained (a timer at the
        same rate would add up to one step of latency). The returns of its episodes."""
        args, deploy_dir = self.args, self.out / 'deploy'
        with self.stage('deploy', f'4/5 deploy: student_controller_node drives sim_node ({args.deploy_episodes} '
                                  f'episodes)'):
            self.run_graph('sim_student', 'student episodes over topics',
                           timeout=60 + 2 * episode_seconds(args.task) * args.deploy_episodes, task=args.task,
                           checkpoint=str(self.out / 'student'), episodes=args.deploy_episodes, seed=EVAL_SEED_BASE,
                           dataset=str(deploy_dir), trigger='sensor')
            topic_returns = [float(r) for r in episode_returns(load_dataset(deploy_dir))]
            self.console.print(f'  returns over topics: {", ".join(f"{r:.0f}" for r in topic_returns)}')
        return topic_returns

    def report(self, teacher: Checkpoint, students: dict[str, Checkpoint], cfg: DistillConfig,
               topic_returns: list[float]) -> Path:
        """5. Teacher vs students on the same held-out randomized episodes: table and plots, and what
        the final student did over topics."""
        args = self.args
        with self.stage('report', f'5/5 report: teacher vs students on {args.eval_episodes} held-out randomized '
                                  f'episodes'):
            notes = report_notes(loss_names(cfg), topic_returns, self.timings)
            rows = evaluate_policies(args.task, teacher, students, args.eval_episodes)
            path = write_report(rows, self.out / 'report', [self.out / 'distill' / LEARNING_CURVE],
                                title=f'distill_ros demo on {args.task}', notes=notes)
        return path

    # ------------------------------------------------------------------ around the stages
    @contextmanager
    def stage(self, name: str, title: str) -> Iterator[None]:
        """A stage under its title; its time, in the report's stage times, once it is done."""
        self.console.rule(f'[bold]{title}')
        started = time.monotonic()
        yield
        self.timings[name] = time.monotonic() - started
        self.console.print(f'  done in {self.timings[name]:.0f} s')

    def run_graph(self, graph: str, what: str, timeout: float, **arguments) -> None:
        """A graph of distill_ros/graphs.py started as processes, exactly as its launch file starts
        it, until it ends by itself (distill_ros.procs), with a progress bar of the episodes its
        recorder has written into the `dataset` argument."""
        folder = Path(arguments['dataset'])
        with GraphProcesses(graph, arguments, self.logs, env=self.env, tag=f'{folder.name}_') as processes, \
                self.episode_progress(what, folder, arguments['episodes']) as show:
            warning = processes.complete(timeout, poll=show)
        if warning:
            self.console.print(f'  [yellow]warning[/yellow]: {warning}')

    @contextmanager
    def episode_progress(self, what: str, folder: Path, episodes: int) -> Iterator[Callable[[], None]]:
        """A progress bar of the episodes in the dataset `folder` (its manifest); yields the
        function that updates it."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        manifest = folder / 'manifest.json'
        with Progress(TextColumn('  {task.description}'), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True) as progress:
            bar = progress.add_task(what, total=episodes)

            def show() -> None:
                if manifest.is_file():
                    try:
                        progress.update(bar, completed=len(json.loads(manifest.read_text())['episodes']))
                    except (json.JSONDecodeError, KeyError):
                        pass
            yield show


def demo_config(args: argparse.Namespace) -> DistillConfig:
    """The distillation config (--config, else config/distill/<task>.yaml where there is one, else
    the default), without in-process DAgger rounds or evaluation (the demo runs both itself);
    --steps for every training."""
    task_config = share_dir() / 'config' / 'distill' / f'{args.task}.yaml'
    config = args.config or (task_config if task_config.is_file() else None)
    overrides = {'dagger': {'rounds': 0}, 'eval': {'episodes': 0}}
    if args.steps is not None:
        overrides.update(train={'steps': args.steps}, dagger={'rounds': 0, 'steps_per_round': args.steps})
    return load_config(config, overrides)


def loss_names(cfg: DistillConfig) -> str:
    """The offline student's losses, for its row: BC, and logit (Gaussian KL) and feature matching
    where weighted."""
    return 'BC' + ('+KL' if cfg.losses.kl.weight > 0 else '') + ('+feature' if cfg.losses.feature.weight > 0 else '')


def train_naive_student(data: Dataset, teacher: Checkpoint, cfg: DistillConfig, out: Path) -> Checkpoint:
    """The naive student, for the report: behavioural cloning on the current sensor reading only (no
    history, no past actions, no logit or feature matching, no DAgger), same size and data."""
    bc_only = replace(cfg, losses=replace(cfg.losses, kl=replace(cfg.losses.kl, weight=0.0),
                                          feature=replace(cfg.losses.feature, weight=0.0)))
    return train_student(data, teacher, bc_only, out, run='naive', progress=False,
                         student_cfg=replace(cfg.student, history=1, past_actions=False))


def episode_seconds(task: str) -> float:
    """Wall time of a full-length episode of `task` in real-time mode."""
    from distill_ros.sim import DistillEnv
    env = DistillEnv(task)
    try:
        return env.dt * env.task.max_episode_steps
    finally:
        env.close()


def report_notes(losses: str, topic_returns: list[float], timings: dict[str, float]) -> str:
    """What the report says below its table: what the naive student is, how the final student did
    over topics, and the stage times."""
    return (
        'The naive student is what distillation is measured against: the same hidden layers trained on the '
        'same recording by behavioural cloning of the current sensor reading alone (no history, no past '
        'actions, no logit or feature matching, no DAgger). The distilled students below it see a sensor '
        f'history and match the teacher\'s actions ({losses}); the last one also learned on the '
        'states it visits itself (DAgger).\n\n'
        f'**Over ROS 2 topics.** The final student drove sim_node (real-time mode) through '
        f'student_controller_node for {len(topic_returns)} episodes: returns '
        f'{", ".join(f"{r:.0f}" for r in topic_returns)} (mean {np.mean(topic_returns):.1f}).\n\n'
        'Stage times: ' + ', '.join(f'{k} {v:.0f} s' for k, v in timings.items()) + '.')


# What a demo writes in OUT; `logs` is left out (a failed run may leave only logs behind).
STAGE_OUTPUTS = ('data', 'bag', 'distill', 'dagger_round1', 'student', 'deploy', 'report')


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    earlier = [name for name in STAGE_OUTPUTS if (out / name).exists()]
    if earlier and not args.overwrite:
        # The recorder continues a dataset it finds: a second run into the same folder would record
        # into the first run's datasets and report on both.
        raise ValueError(f'{out} holds an earlier demo\'s outputs ({", ".join(earlier)}); a new run would add to its '
                         f'recordings; expected a new --out folder, or --overwrite to replace them')
    for name in earlier:
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
    demo = Demo(args)
    try:
        demo.run()
    except RuntimeError as exc:   # a graph that failed or did not end (procs.GraphFailed)
        demo.console.print(f'[bold red]demo failed:[/bold red] {exc}')
        return 1
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('demo', help='the whole pipeline over ROS 2 topics on a built-in task (minutes)')
    p.add_argument('--task', default='cartpole', help='cartpole (default, minutes), hopper or ant (each has a '
                   'shipped teacher; longer), or a task YAML path (with --teacher)')
    add_teacher_option(p)
    p.add_argument('--config', help='distillation YAML (default: config/distill/<task>.yaml where there is one, '
                   'else config/distill/default.yaml)')
    p.add_argument('--out', default='demo_out', help='output folder (default: demo_out)')
    p.add_argument('--overwrite', action='store_true', help='replace the outputs of an earlier demo in --out (without '
                   'it, a folder that holds them is refused)')
    p.add_argument('--episodes', type=int, default=10, help='teacher episodes to record')
    p.add_argument('--dagger-episodes', type=int, default=4, help='episodes of the DAgger round')
    p.add_argument('--deploy-episodes', type=int, default=2, help='episodes the deployed student drives')
    p.add_argument('--eval-episodes', type=int, default=20, help='held-out episodes in the report')
    p.add_argument('--steps', type=int, help='optimizer steps of each training (offline, naive, DAgger round; '
                   'default: the distillation config)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--keep-bag', action='store_true', help='also write the recording as a rosbag2 (MCAP) bag')
    p.add_argument('--domain-id', type=int, help='ROS_DOMAIN_ID for the demo (default: a random free-ish one)')
    p.set_defaults(func=cmd_demo)
