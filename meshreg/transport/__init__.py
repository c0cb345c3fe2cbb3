"""ZeroMQ sockets (and, for simulation, an in-memory stand-in)."""
