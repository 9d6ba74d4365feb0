"""``python -m rag.cli``: the same app as the ``rag`` console script."""

from rag.cli.main import app

app()
