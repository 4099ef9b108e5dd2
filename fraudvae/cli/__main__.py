"""``python -m fraudvae.cli``: the same as the ``fraudvae`` command."""

from fraudvae.cli.main import main

raise SystemExit(main())
