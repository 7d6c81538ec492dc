"""`python -m draftline`: the same as the `draftline` command."""

from .app import main

main()
