#!/bin/sh
# Cross-tenant matrix: team-a's key against team-b's data (run in work/, cluster up).
export MESHREG_SERVER_KEY=cluster.pub MESHREG_SERVERS=127.0.0.1:13049,127.0.0.1:19685,127.0.0.1:14933
A="--key team-a.key -n team-b"
run(){ echo "### meshreg $*"; timeout 20 meshreg "$@" 2>&1 | head -6; }
run instances billing-secret-svc $A
run services $A
run watch billing-secret-svc $A
run select billing-secret-svc $A
run register evil 10.6.6.6:80 $A
run deregister billing-secret-svc 10.1.1.1:80 $A
run instance-set billing-secret-svc 10.1.1.1:80 --enabled false $A
run service-set billing-secret-svc --protect-threshold 0.5 $A
run config get secret-db.yaml $A
run config list $A
run config list -g DEFAULT_GROUP $A
run config history secret-db.yaml $A
run config watch secret-db.yaml $A
run config publish secret-db.yaml --content pwn $A
run config delete secret-db.yaml $A
run config rollback secret-db.yaml 1 $A
run config gray secret-db.yaml --content pwn --label env=canary $A
run config promote secret-db.yaml $A
run config gray-drop secret-db.yaml $A
run config export --out /tmp/r64-x.zip $A
run namespaces --key team-a.key
run stats --key team-a.key
run stats --key team-a.key --format prometheus
run cluster --key team-a.key
run config force-ready -s 127.0.0.1:13049 --key team-a.key
