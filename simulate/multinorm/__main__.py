"""``python -m simulate.multinorm``: see :mod:`simulate.multinorm.command`."""

from .command import main

if __name__ == "__main__":
    raise SystemExit(main())
