"""Every benchmark client comes from 127.0.0.1: the per-address cap on TCP connections is off, as the
per-address cap on sockets is in config/sockets.py (Sails has neither)."""

max_connections_per_ip = 0
