#!/bin/bash
# https-www.sh DIR PORT FILE: openssl s_server -WWW serving DIR, then curl fetches FILE over HTTPS.
set -u
DIR=$1 PORT=$2 FILE=$3
cd "$DIR"
exec 3< <(sleep 120)
SLEEPER=$!
openssl s_server -accept "$PORT" -cert c.pem -key k.pem -WWW -naccept 1 <&3 >srvout 2>srverr &
SP=$!
echo $SP > server.pid
for _ in $(seq 200); do ss -Hltn "sport = :$PORT" | grep -q LISTEN && break; sleep 0.05; done
curl -sk --http1.1 -o curlout "https://127.0.0.1:$PORT/$FILE" &
CP=$!
echo $CP > client.pid
wait $CP
wait $SP
kill $SLEEPER 2>/dev/null
exit 0
