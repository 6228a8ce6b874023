// Two-process fan-out: half the sockets on each trisails process, all in one room; a controller on the
// first process broadcasts, each broadcast after the previous one's ack. Prints one JSON line.
// usage: node fanout.js URL_A URL_B SOCKETS ROUNDS
const path = require('path');
const { io } = require(path.join(__dirname, '..', '.peers', 'loadgen', 'node_modules', 'socket.io-client'));
const [urlA, urlB] = [process.argv[2], process.argv[3]];
const n = +process.argv[4], rounds = +process.argv[5];
const now = () => performance.timeOrigin + performance.now();
(async () => {
  const sockets = [], latencies = [];
  let got = 0;
  const deadline = Date.now() + 60000;
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => new Promise((resolve, reject) => {
      const s = io((i + k) % 2 ? urlB : urlA, { transports: ['websocket'], forceNew: true, reconnection: false });
      s.on('fanout', (p) => { got++; latencies.push(now() - p.t); });
      s.on('connect_error', reject);
      s.on('connect', () => s.emit('join', 'room', resolve));
      sockets.push(s);
    })));
  }
  const control = io(urlA, { transports: ['websocket'], forceNew: true, reconnection: false });
  await new Promise((r) => control.on('connect', r));
  console.log('READY');
  await new Promise((r) => process.stdin.once('data', r));
  const started = now();
  for (let i = 0; i < rounds && Date.now() < deadline; i++) {
    await new Promise((r) => control.emit('fanout', { room: 'room', payload: { t: now(), pad: 'x'.repeat(70) } }, r));
  }
  while (got < n * rounds && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : null;
  console.log(JSON.stringify({ delivered: got, expected: n * rounds, ms: now() - started, p50: q(0.5), p99: q(0.99) }));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
