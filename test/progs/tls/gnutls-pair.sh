#!/bin/bash
# gnutls-pair.sh DIR PORT UP DOWN [PROG]: a GnuTLS client sends file UP to openssl s_server (OpenSSL) on
# loopback, which sends file DOWN back. The client is gnutls-cli, whose stdin stays open until DOWN
# has arrived (DIR/client.pid, DIR/cliout: what it received); or PROG (test/progs/tls/gnutls-range.c),
# run as `PROG PORT size(UP) size(DOWN)` (DIR/client.json: its line). Writes DIR/server.pid and
# DIR/srvout (what the server received).
set -u
DIR=$1 PORT=$2 UP=$3 DOWN=$4 PROG=${5:-}
cd "$DIR"
want=$(stat -c %s "$DOWN")
ch=$(head -c1 "$DOWN") # DOWN is one repeated byte that gnutls-cli's status lines do not contain
exec 3< <(cat "$DOWN"; sleep 120)
SLEEPER=$!
openssl s_server -quiet -accept "$PORT" -cert c.pem -key k.pem -naccept 1 <&3 >srvout 2>srverr &
SP=$!
echo $SP > server.pid
for _ in $(seq 200); do ss -Hltn "sport = :$PORT" | grep -q LISTEN && break; sleep 0.05; done
if [ -n "$PROG" ]; then
	"$PROG" "$PORT" "$(stat -c %s "$UP")" "$want" >client.json
	RC=$?
	wait $SP
	kill $SLEEPER 2>/dev/null
	exit $RC
fi
rm -f cin; mkfifo cin
gnutls-cli --insecure --port "$PORT" 127.0.0.1 <cin >cliout 2>clierr &
CP=$!
echo $CP > client.pid
exec 4>cin
cat "$UP" >&4
for _ in $(seq 400); do [ "$(tr -cd "$ch" <cliout | wc -c)" -ge "$want" ] && break; sleep 0.05; done
# the server's bytes are in: let the client's last writes go out, then close its stdin (it says bye)
sleep 0.3
exec 4>&-
wait $CP
wait $SP
kill $SLEEPER 2>/dev/null
exit 0
