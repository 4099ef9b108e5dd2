"""The ``fraudvae`` command, the only code that parses argv: ``main`` builds the parser and runs a command.

``main.py`` holds the commands of the offline loop (train, evaluate, score, demo, features,
serve); ``state.py`` the online state's (``fraudvae state load|info|reset``).
"""

from fraudvae.cli.main import main

__all__ = ["main"]
