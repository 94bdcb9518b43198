"""``python -m doclane``: the ``doclane`` command."""

from doclane.cli import main

if __name__ == "__main__":
    main()
