"""The I/O layer on trio: Engine.IO sessions, the ASGI transports, the Socket.IO server and rooms."""
