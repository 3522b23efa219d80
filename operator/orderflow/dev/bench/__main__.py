import sys

from orderflow.dev.bench.run import main

sys.exit(main())
