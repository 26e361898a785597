import sys

from ensprune.cli import main

sys.exit(main())
