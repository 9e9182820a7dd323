import sys

from tli.cli import main

sys.exit(main())
