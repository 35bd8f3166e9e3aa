"""``python -m ftcore``: the command line (see :mod:`ftcore.cli`)."""

from .cli import main_exit

if __name__ == "__main__":
    main_exit()
