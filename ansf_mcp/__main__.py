from ansf_mcp.cli import main

raise SystemExit(main())
