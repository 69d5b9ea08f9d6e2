from segment_tools.cli import main

raise SystemExit(main())
