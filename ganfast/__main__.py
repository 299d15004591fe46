"""``python -m ganfast`` runs the ``ganfast`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
