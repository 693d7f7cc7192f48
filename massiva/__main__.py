"""``python -m massiva`` is the ``massiva`` command."""

from massiva.cli import main

main()
