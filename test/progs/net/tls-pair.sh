#!/bin/bash
# tls-pair.sh DIR PORT PAYLOAD: openssl s_server (one session) and s_client sending PAYLOAD on loopback.
# Writes DIR/server.pid, DIR/client.pid, DIR/srvout (what the server received).
set -u
DIR=$1 PORT=$2 PAYLOAD=$3
cd "$DIR"
exec 3< <(sleep 120)
SLEEPER=$!
openssl s_server -accept "$PORT" -cert c.pem -key k.pem -naccept 1 <&3 >srvout 2>srverr &
SP=$!
echo $SP > server.pid
for _ in $(seq 200); do ss -Hltn "sport = :$PORT" | grep -q LISTEN && break; sleep 0.05; done
openssl s_client -connect "127.0.0.1:$PORT" <"$PAYLOAD" >cliout 2>clierr &
CP=$!
echo $CP > client.pid
wait $CP
wait $SP
kill $SLEEPER 2>/dev/null
exit 0
