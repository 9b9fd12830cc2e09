from acme_ca.cli.main import main

raise SystemExit(main())
