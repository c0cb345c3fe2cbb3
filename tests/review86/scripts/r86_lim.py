import sys, time, socket
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
import msgpack, zmq
nodes = d.start_cluster(1)
n = nodes[0]
try:
    d.wait_ready(n.address)
    for off in range(4):
        s = socket.socket(); r = s.connect_ex(("127.0.0.1", n.port+off)); s.close(); print("port P+%d" % off, "bound" if r == 0 else "not bound")
    c = d.DocClient(n.address)
    for size in (2228224, 2228225):
        c.send_frames([b"", b"\x00"*size])
        try: print(size, msgpack.unpackb(c.recv_frames(2)[-1])["error"])
        except d.Timeout: print(size, "no reply (dropped)")
    # restart same port: SUB gets new epoch sync
    s = d.DocSub(d.notify_address(n.address)); s.subscribe(d.service_topic("orders")); m = s.recv(2); e1 = m[2]["epoch"]
    n.stop(); n2 = d.Node(n.port, data_dir=n.tmp); nodes.append(n2); d.wait_ready(n2.address)
    m = s.recv(5); print("after restart", m and (m[2]["kind"], m[2]["epoch"] != e1))
finally:
    for x in nodes: x.stop()
