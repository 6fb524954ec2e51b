"""``python -m rag_qa``: the ``ragqa`` command, for launchers such as ``torchrun -m rag_qa``.

Started by a launcher with several processes, only the first prints its
results; the others still report errors on stderr.
"""

import os
import sys

from rag_qa.cli import main

if int(os.environ.get("RANK", "0")) != 0:
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
main()
