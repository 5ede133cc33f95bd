"""``python -m f0mesh``: the command line, or the node that ``f0mesh up`` handed over to this fresh
interpreter (serve.run_in_fresh_interpreter), which then never imports the command line."""

import os
import sys

from f0mesh.serve import CONFIG_FD_ENV

if CONFIG_FD_ENV in os.environ:
    from f0mesh.serve import run_from_pipe

    sys.exit(run_from_pipe())

from f0mesh.cli import main

main()
