"""The `distill-ros` command."""
from __future__ import annotations

import argparse
import sys


def cmd_tasks(args: argparse.Namespace) -> int:
    """List the built-in tasks, or show one task's observation and action layout."""
    from rich.console import Console
    from rich.table import Table

    from distill_ros.sim import DistillEnv, load_task, task_names

    console = Console()
    if not args.task:
        table = Table(title='built-in tasks (config/tasks/)')
        for column in ('task', 'gymnasium env', 'control Hz', 'episode steps', 'sensor_obs', 'privileged_obs',
                       'actions'):
            table.add_column(column)
        for name in task_names():
            task = load_task(name)
            env = DistillEnv(task)
            table.add_row(name, task.env_id, f'{1 / env.dt:.0f}', str(task.max_episode_steps),
                          str(env.sensor_spec.size), str(env.privileged_spec.size), str(len(env.action_names)))
            env.close()
        console.print(table)
        console.print('`distill-ros tasks NAME` shows a task\'s fields; config/tasks/NAME.yaml describes it.')
        return 0
    env = DistillEnv(args.task)
    for title, spec in (('sensor_obs (student)', env.sensor_spec), ('privileged_obs (teacher)', env.privileged_spec)):
        table = Table(title=f'{env.task.name}: {title}, {spec.size} values')
        table.add_column('field')
        table.add_column('size', justify='right')
        table.add_column('elements')
        for f in spec.fields:
            table.add_row(f.name, str(f.size), ', '.join(f.elements))
        console.print(table)
    console.print(f'actions ({len(env.action_names)}): {", ".join(env.action_names)}; '
                  f'bounds {env.action_space.low.tolist()} .. {env.action_space.high.tolist()}; '
                  f'control period {env.dt * 1e3:.0f} ms')
    env.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='distill-ros', description='Sim-to-real policy distillation for ROS 2.')
    sub = parser.add_subparsers(dest='command', required=True)
    tasks = sub.add_parser('tasks', help='list the built-in tasks or show one task\'s layouts')
    tasks.add_argument('task', nargs='?', help='task name or task YAML path')
    tasks.set_defaults(func=cmd_tasks)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f'distill-ros {args.command}: error: {exc}', file=sys.stderr)
        status = 2
    raise SystemExit(status)


if __name__ == '__main__':
    main()
