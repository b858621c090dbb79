"""``python -m mrkm``: the same as the ``mrkm`` command (:mod:`mrkm.cli`)."""

import sys

from mrkm.cli import main

if __name__ == "__main__":
    sys.exit(main())
