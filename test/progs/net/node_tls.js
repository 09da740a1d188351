// A TLS server and client in one node process (node links OpenSSL in and exports its SSL_*
// symbols): after DELAY_MS, the client writes K bytes, the server reads them and closes.
// Usage: node node_tls.js CERT KEY K DELAY_MS
'use strict';
const fs = require('node:fs');
const tls = require('node:tls');

const [cert, key, k, delay] = [fs.readFileSync(process.argv[2]), fs.readFileSync(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
setTimeout(() => {
  let received = 0;
  const server = tls.createServer({ cert, key }, (socket) => {
    socket.on('data', (d) => {
      received += d.length;
      if (received >= k) socket.end();
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const client = tls.connect({ port: server.address().port, host: '127.0.0.1', rejectUnauthorized: false }, () => {
      client.write(Buffer.alloc(k, 'n'));
    });
    client.on('data', () => {});
    client.on('close', () => {
      server.close();
      if (received !== k) {
        console.error(`received ${received} of ${k}`);
        process.exit(1);
      }
    });
  });
}, delay);
