"""Thin Typer commands over library functions, one module per stage."""
