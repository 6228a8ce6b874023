"""The arena's own settings (``app.settings.custom``)."""

tick_rate = 20  # snapshots per second
match_seconds = 300  # a match ends after this long
idle_seconds = 10  # ... or after standing empty this long
max_players = 64  # players per match; the next one starts a new match
