"""Simulated robots with a privileged/sensor observation split (no rclpy here)."""
from distill_ros.sim.env import PRIVILEGED, SENSOR, DistillEnv
from distill_ros.sim.task import TaskConfigError, TaskSpec, load_task, task_names

__all__ = ['DistillEnv', 'PRIVILEGED', 'SENSOR', 'TaskConfigError', 'TaskSpec', 'load_task', 'task_names']
