"""``python -m xvlm2vec`` runs the console script."""

import sys

from xvlm2vec.cli import main

sys.exit(main())
