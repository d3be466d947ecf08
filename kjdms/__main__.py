"""`python -m kjdms`: the same as the `kjdms` command."""
from .cli import main

main()
