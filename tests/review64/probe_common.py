"""Shared bits for the review64 probing scripts (not tests)."""
import os, sys, time
import zmq, zmq.auth, msgpack
W = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")
PORTS = [13049, 19685, 14933]

def curve(name):
    pub, sec = zmq.auth.load_certificate(os.path.join(W, f"{name}.key"))
    spub, _ = zmq.auth.load_certificate(os.path.join(W, "cluster.pub"))
    return pub, sec, spub

sys.path.insert(0, "/work/rev64/tests")
from helpers import RawDealer, raw_request  # noqa
