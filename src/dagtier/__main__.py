"""``python -m dagtier``: the same as the ``dagtier`` command."""

from dagtier.cli import main

main()
