"""student_controller_node: not implemented yet (see the project's open issues); exits with status 2 and says so."""
import sys


def main(args=None) -> None:
    print('student_controller_node is not implemented yet in this version of distill_ros', file=sys.stderr)
    raise SystemExit(2)


if __name__ == '__main__':
    main()
