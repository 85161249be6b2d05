"""`python -m paloma` runs the CLI; `accelerate launch -m paloma eval ...` relies on it."""

import sys

from paloma.cli import main

sys.exit(main())
