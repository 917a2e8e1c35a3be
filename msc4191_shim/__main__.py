"""`python -m msc4191_shim` is the same as the `msc4191-shim` command."""

from msc4191_shim.cli import main

raise SystemExit(main())
