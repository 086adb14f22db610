"""One DAgger round over ROS 2 topics: the student drives the simulator, the teacher labels every
state the student visits, the recorder records both:

    ros2 launch distill_ros dagger.launch.py student:=runs/cartpole/student dataset:=data/dagger_round1 episodes:=8

sim_node (lockstep: each observation waits for the student's command, stamped JointState on
joint_commands) + student_controller_node (trigger sensor: one command per observation) +
teacher_node + recorder_node, with the package's parameter files. The launch ends by itself once
the episodes are recorded. Then retrain on the aggregate:

    distill-ros distill --dataset ... (see docs/methods.md; the in-process path mixes teacher actions with beta)

The graph (nodes, parameter files, parameters, remappings, launch arguments, when it ends) is
described once, in distill_ros/graphs.py; `distill-ros demo` and the tests start the same
description as processes. `ros2 launch distill_ros dagger.launch.py --show-args` lists the arguments.
"""
from distill_ros.graphs import launch_description


def generate_launch_description():
    return launch_description('dagger')
