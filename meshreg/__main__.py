"""``python -m meshreg`` = the ``meshreg`` command."""

from meshreg.cli import main

main()
