/**
 * The floor of one Runtime API hop for nodejs20.x (bench/run.py --only runtimes): node's own HTTP
 * client stack, as lamina's Node runtime uses it (runtimes/nodejs/bootstrap.mjs: `http.request`
 * on a keep-alive Agent with maxSockets 1, the body read to 'end'), against a tiny server.
 *
 *   node hop_client.mjs PORT N WARMUP
 *
 * N + WARMUP sequential POSTs of "{}" on one keep-alive connection to 127.0.0.1:PORT; prints the
 * last N round trips in nanoseconds, one per line.
 */
import http from 'node:http';

const [port, count, warmup] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const body = '{}';
const options = {
  hostname: '127.0.0.1',
  port,
  path: '/2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response',
  method: 'POST',
  agent,
  headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
};
const samples = new Array(count);
let i = 0;

function one() {
  const t0 = process.hrtime.bigint();
  const req = http.request(options, (res) => {
    res.setEncoding('utf8');
    let text = '';
    res.on('data', (chunk) => (text += chunk));
    res.on('end', () => {
      const dt = process.hrtime.bigint() - t0;
      if (res.statusCode !== 200 || text !== body) {
        console.error(`hop server answered ${res.statusCode}: ${text}`);
        process.exit(1);
      }
      if (i >= warmup) samples[i - warmup] = dt;
      i += 1;
      if (i < warmup + count) one();
      else {
        process.stdout.write(samples.join('\n') + '\n');
        agent.destroy();
      }
    });
  });
  req.on('error', (err) => {
    console.error(err);
    process.exit(1);
  });
  req.end(body);
}

one();
