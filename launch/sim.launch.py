"""Start the simulated robot alone: `ros2 launch distill_ros sim.launch.py task:=hopper mode:=realtime`.

It publishes joint_states, imu/data, privileged/state, sim/step, sim/episode and /clock, and takes
commands on `commands` (see `ros2 run distill_ros sim_node --ros-args --help` and config/sim.yaml).

The graph (nodes, parameter files, parameters, remappings, launch arguments, when it ends) is
described once, in distill_ros/graphs.py; `distill-ros demo` and the tests start the same
description as processes. `ros2 launch distill_ros sim.launch.py --show-args` lists the arguments.
"""
from distill_ros.graphs import launch_description


def generate_launch_description():
    return launch_description('sim')
