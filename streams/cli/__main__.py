"""``python -m hanzo.ml.streams.cli``: the ``hanzo-ml`` command."""

from hanzo.ml.streams.cli import main

raise SystemExit(main())
