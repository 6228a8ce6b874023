"""Models as Pony ORM entities, and the blueprint queries on them (internal: the public API is :mod:`trisails`)."""
