"""Distil a student from a dataset or a bag with distill_node:

    ros2 launch distill_ros distill.launch.py dataset:=data/cartpole out:=runs/cartpole_student
    ros2 launch distill_ros distill.launch.py bag:=bags/robot_run task:=cartpole out:=runs/from_bag

Parameters come from the package's config/distill_node.yaml, then these arguments. The node
reports progress on /diagnostics, writes OUT/student and exits; the launch ends with it.

The graph (nodes, parameter files, parameters, remappings, launch arguments, when it ends) is
described once, in distill_ros/graphs.py; `distill-ros demo` and the tests start the same
description as processes. `ros2 launch distill_ros distill.launch.py --show-args` lists the arguments.
"""
from distill_ros.graphs import launch_description


def generate_launch_description():
    return launch_description('distill')
