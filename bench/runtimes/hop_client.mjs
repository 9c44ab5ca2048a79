/**
 * The floor of one Runtime API hop for nodejs20.x (bench/run.py --only runtimes): the way
 * lamina's Node runtime (runtimes/nodejs/bootstrap.mjs) talks HTTP -- one persistent `net`
 * socket with noDelay, each request one write, the response parsed from the bytes as they come
 * (status line, headers, Content-Length body) -- against a tiny server.
 *
 *   node hop_client.mjs PORT N WARMUP
 *
 * N + WARMUP sequential POSTs of "{}" on one keep-alive connection to 127.0.0.1:PORT; prints the
 * last N round trips in nanoseconds, one per line.
 */
import net from 'node:net';

const [port, count, warmup] = process.argv.slice(2).map(Number);
const body = '{}';
const request = Buffer.from(
  'POST /2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response HTTP/1.1\r\n' +
    `Host: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n` +
    body,
);
const samples = new Array(count);
let i = 0;
let t0 = 0n;
let pending = Buffer.alloc(0);

const socket = net.connect({ host: '127.0.0.1', port, noDelay: true }, one);
socket.on('error', (err) => {
  console.error(err);
  process.exit(1);
});
socket.on('data', (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  const end = pending.indexOf('\r\n\r\n');
  if (end < 0) return;
  const head = pending.toString('latin1', 0, end);
  const match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  const length = match ? Number(match[1]) : 0;
  if (pending.length < end + 4 + length) return;
  const dt = process.hrtime.bigint() - t0;
  const status = head.slice(9, 12);
  const text = pending.toString('utf8', end + 4, end + 4 + length);
  pending = pending.subarray(end + 4 + length);
  if (status !== '200' || text !== body) {
    console.error(`hop server answered ${status}: ${text}`);
    process.exit(1);
  }
  if (i >= warmup) samples[i - warmup] = dt;
  i += 1;
  if (i < warmup + count) one();
  else {
    process.stdout.write(samples.join('\n') + '\n');
    socket.destroy();
  }
});

function one() {
  t0 = process.hrtime.bigint();
  socket.write(request);
}
