"""Command groups of the `lmkernel` CLI that live outside cli.py (each a typer app added there)."""
