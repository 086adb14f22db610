"""Simulated robots with a privileged/sensor observation split (no rclpy here)."""
from distill_ros.sim.env import PRIVILEGED, SENSOR, DistillEnv
from distill_ros.sim.task import TaskConfigError, TaskFile, TaskSpec, load_task, resolve_task, task_names

__all__ = ['DistillEnv', 'PRIVILEGED', 'SENSOR', 'TaskConfigError', 'TaskFile', 'TaskSpec', 'load_task', 'resolve_task',
           'task_names']
