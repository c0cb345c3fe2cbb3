"""The node's event loop: sockets in, core calls with the real clock, effects out."""
