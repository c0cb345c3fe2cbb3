"""review85: top growth between two tracemalloc snapshots (traced_node.py).
    python compare_snaps.py A.pickle B.pickle [lineno|traceback] [N]"""
import sys
import tracemalloc

a, b = (tracemalloc.Snapshot.load(p) for p in sys.argv[1:3])
kind = sys.argv[3] if len(sys.argv) > 3 else "lineno"
top = int(sys.argv[4]) if len(sys.argv) > 4 else 15
for st in b.compare_to(a, kind)[:top]:
    print(st)
    if kind == "traceback":
        for line in st.traceback.format()[-12:]:
            print("    ", line)
