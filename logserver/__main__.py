import sys

from logserver.main import main

sys.exit(main())
