"""``python3 -m bitstreams.driver run .`` on a board, where no console script is installed."""

import sys

from bitstreams.driver.cli import main

sys.exit(main())
