"""``python -m driftline``: the same as the ``driftline`` command."""

from driftline.cli import main

if __name__ == "__main__":
    main()
