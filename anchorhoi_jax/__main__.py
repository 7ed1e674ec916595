"""`python -m anchorhoi_jax ...` is the `anchorhoi` command."""

import sys

from anchorhoi_jax.cli import main

sys.exit(main())
