"""The Sails layer: one router, one req/res pair, for HTTP and socket requests alike."""
