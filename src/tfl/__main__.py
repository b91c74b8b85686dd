import sys

from tfl.cli.main import main

sys.exit(main())
