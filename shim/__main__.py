"""`python -m shim` is the same as the `msc4191-shim` command."""

from shim.cli import main

raise SystemExit(main())
