#!/bin/bash
# go-pair.sh DIR PORT SERVER CLIENT UP DOWN: the Go TLS server binary SERVER and client binary CLIENT
# (test/progs/tls/gotls) as two processes on loopback: the client sends UP bytes, the server DOWN.
# The client connects 1.5 s after its exec (the collector probes a new executable 5-100 ms after exec).
# Writes DIR/server.pid, DIR/client.pid, DIR/server.out, DIR/client.out.
set -u
DIR=$1 PORT=$2 SERVER=$3 CLIENT=$4 UP=$5 DOWN=$6
cd "$DIR"
"$SERVER" server "127.0.0.1:$PORT" c.pem k.pem "$UP" "$DOWN" >server.out 2>&1 &
SP=$!
echo $SP > server.pid
for _ in $(seq 200); do ss -Hltn "sport = :$PORT" | grep -q LISTEN && break; sleep 0.05; done
"$CLIENT" client "127.0.0.1:$PORT" "$UP" "$DOWN" 1500 >client.out 2>&1 &
CP=$!
echo $CP > client.pid
wait $CP
C=$?
wait $SP
S=$?
exit $((C | S))
