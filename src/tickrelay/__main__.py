from tickrelay.cli import main


raise SystemExit(main())
