from netsculpt.cli import main

raise SystemExit(main())
