"""Where the package's shared files (config/, launch/) live, installed or in a source checkout."""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = 'distill_ros'


def share_dir() -> Path:
    """The folder holding `config/` and `launch/`.

    Looked up in this order: `$DISTILL_ROS_SHARE`; the ament index (a colcon install, when
    `ament_index_python` is importable); `<prefix>/share/distill_ros` of this interpreter (a plain
    pip install) or of the install prefix this module lies in; the source checkout this module
    was imported from (an editable install).
    """
    candidates: list[Path] = []
    if os.environ.get('DISTILL_ROS_SHARE'):
        candidates.append(Path(os.environ['DISTILL_ROS_SHARE']))
    source_root = Path(__file__).resolve().parent.parent
    candidates.append(source_root)
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            candidates.append(Path(get_package_share_directory(PACKAGE)))
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (no sourced workspace)
            pass
    except ImportError:
        pass
    candidates.append(Path(sys.prefix) / 'share' / PACKAGE)
    # <prefix>/lib/pythonX.Y/site-packages/distill_ros -> <prefix>/share/distill_ros (colcon install, unsourced)
    parents = Path(__file__).resolve().parents
    if len(parents) > 4:
        candidates.append(parents[4] / 'share' / PACKAGE)
    for candidate in candidates:
        if (candidate / 'config').is_dir():
            return candidate
    raise FileNotFoundError(f'cannot find the distill_ros share folder (with config/); looked in '
                            f'{[str(c) for c in candidates]}; set DISTILL_ROS_SHARE to the folder')


def config_path(*parts: str) -> Path:
    return share_dir().joinpath('config', *parts)
