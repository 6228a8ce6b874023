# The orchestrator gives every start a fresh SQLite file in TRISAILS_DATABASE_URL.
migrate = "drop"
