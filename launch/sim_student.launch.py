"""The simulated robot driven by a distilled student, as on hardware:

    ros2 launch distill_ros sim_student.launch.py checkpoint:=cartpole
    ros2 launch distill_ros sim_student.launch.py checkpoint:=runs/cartpole/student episodes:=5 dataset:=data/eval
    ros2 launch distill_ros sim_student.launch.py task:=quadruped checkpoint:=quadruped command_source:=cmd_vel
        # then: ros2 topic pub /cmd_vel geometry_msgs/msg/Twist ...

sim_node in realtime mode (steps on the wall clock, holds the last command) + student_controller_node
(auto-activated), each with its parameter file from the package's config/ folder. The controller
reads only joint_states and imu/data; sim_node takes its Float64MultiArray on commands. With
`episodes` the launch ends after them; with `dataset` recorder_node records the student's episodes
(their returns are on sim/step). With `command_source:=cmd_vel` a task with a velocity command
(quadruped) follows geometry_msgs/Twist on cmd_vel: the simulator's command (its reward, privileged
state) and the student's observation alike, zero velocity once cmd_vel falls silent.

The graph (nodes, parameter files, parameters, remappings, launch arguments, when it ends) is
described once, in distill_ros/graphs.py; `distill-ros demo` and the tests start the same
description as processes. `ros2 launch distill_ros sim_student.launch.py --show-args` lists the arguments.
"""
from distill_ros.graphs import launch_description


def generate_launch_description():
    return launch_description('sim_student')
