"""Sans-IO core: pure logic that takes time and messages, returns effects.

Nothing in this package imports zmq, socket, threading, time or random.
"""
