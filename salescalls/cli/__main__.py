"""`python -m salescalls.cli` runs the command line."""

from salescalls.cli import main

main()
