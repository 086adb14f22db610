"""ament_python package definition for distill_ros.

`colcon build` installs the console scripts to lib/distill_ros (see setup.cfg) so that
`ros2 run distill_ros <node>` finds them, and the launch files and configs to share/distill_ros.
"""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'distill_ros'


def tree(folder: str, pattern: str) -> list[tuple[str, list[str]]]:
    """data_files entries that keep the sub-folder layout of `folder` under share/<package>."""
    entries: dict[str, list[str]] = {}
    for path in sorted(glob(os.path.join(folder, '**', pattern), recursive=True)):
        target = os.path.join('share', package_name, os.path.dirname(path))
        entries.setdefault(target, []).append(path)
    return sorted(entries.items())


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench']),
    package_data={package_name: ['teachers/*/*.json', 'teachers/*/*.safetensors',
                                 'students/*/*.json', 'students/*/*.safetensors']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        *tree('launch', '*.launch.py'),
        *tree('config', '*.yaml'),
        *tree('config', '*.xml'),   # MuJoCo models of the tasks on a model file (config/tasks/models/)
    ],
    python_requires='>=3.10',
    install_requires=[
        'numpy>=1.24',
        'pyyaml>=6',
        'mujoco>=3.1',
        'gymnasium[mujoco]>=1.0',
        'tqdm>=4.60',
        'rich>=13',
        'torch>=2.4',  # requirements.txt pins the CPU build; see README
        'safetensors>=0.4',
        'stable-baselines3>=2.3',
        'tensorboard>=2.14',
        'matplotlib>=3.7',
        'rosbags>=0.10',
        'onnx>=1.15',
        'onnxruntime>=1.17',
        'onnxscript>=0.1',  # torch.onnx.export
        'rsl-rl-lib>=5',   # PPO for `distill-ros finetune`; its Distillation is the baseline in bench/baselines.py
        'tensordict',      # rsl_rl's rollout batches, which finetune.py builds itself
    ],
    extras_require={
        # colcon is here so CI can check the ROS 2 build path on a machine without ROS 2.
        # pytest < 8.4: on a ROS 2 machine every `python -m pytest` loads the launch_testing and
        # launch_pytest plugins (launch 3.7.1). pytest 9 refuses them (PluginValidationError ...
        # {'path'}; ros2/launch#947) and from 8.4 on launch_pytest cannot collect its tests
        # ('FixtureFunctionDefinition' object has no attribute '_pytestfixturefunction'; seen with
        # 8.4.2 and 9.0.3). 8.3.5 runs them: docs/testing.md.
        'test': ['pytest>=8,<8.4', 'pytest-timeout>=2', 'ruff>=0.4', 'colcon-core', 'colcon-ros',
                 'colcon-python-setup-py', 'hypothesis>=6'],
    },
    zip_safe=True,
    maintainer='distill_ros developers',
    maintainer_email='dev@distill-ros.invalid',
    description='Sim-to-real policy distillation for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_node = distill_ros.nodes.sim_node:main',
            'teacher_node = distill_ros.nodes.teacher_node:main',
            'recorder_node = distill_ros.nodes.recorder_node:main',
            'distill_node = distill_ros.nodes.distill_node:main',
            'student_controller_node = distill_ros.nodes.student_controller_node:main',
            'distill-ros = distill_ros.cli:main',
        ],
    },
)
