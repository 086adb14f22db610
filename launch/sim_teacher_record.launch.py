"""Record a dataset (and optionally a bag) with the privileged teacher driving the simulator:

    ros2 launch distill_ros sim_teacher_record.launch.py task:=cartpole episodes:=20 dataset:=data/cartpole

sim_node (lockstep, stamped JointState commands from teacher/action) + teacher_node + recorder_node,
each with its parameter file from the package's config/ folder. The launch ends by itself once the
simulator has run its episodes and the recorder has written them.

The graph (nodes, parameter files, parameters, remappings, launch arguments, when it ends) is
described once, in distill_ros/graphs.py; `distill-ros demo` and the tests start the same
description as processes. `ros2 launch distill_ros sim_teacher_record.launch.py --show-args` lists the arguments.
"""
from distill_ros.graphs import launch_description


def generate_launch_description():
    return launch_description('sim_teacher_record')
