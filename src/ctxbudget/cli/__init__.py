"""The ``ctxbudget`` command line. The only package that imports typer / rich tables."""
