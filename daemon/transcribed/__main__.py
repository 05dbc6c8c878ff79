from transcribed import cli

raise SystemExit(cli.main())
