"""``python -m stream_ner`` runs the command line."""

import sys

from stream_ner.cli import main

sys.exit(main())
