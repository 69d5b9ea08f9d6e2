"""``python -m client.cli``: the same as the ``logctl`` console script."""

from client.cli.main import main

raise SystemExit(main())
