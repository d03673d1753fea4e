"""``python -m bench PROFILE``: see bench/README.md."""

from bench.run import main

raise SystemExit(main())
