'use strict';
/**
 * One load-generator process of the trisails benchmarks (started by `python -m benchmarks`).
 *
 *     node worker.js '<json config>'
 *
 * It talks to the orchestrator in lines: commands on stdin (`go`, `finish`, `check`, `exit`), events on
 * stdout as JSON (`{"event": "ready"}`, `{"event": "result", ...}`, ...). Every loop is bounded in count
 * and in time, and the process ends by itself at `deadline` seconds whatever happens.
 *
 * Clients (config.client):
 * - `sails`: the real sails.io.js 1.2.1 over socket.io-client 2.0.3 (Engine.IO 3), for virtual requests;
 * - `v2`: socket.io-client 2.0.3 (Engine.IO 3), raw events;
 * - `v4`: socket.io-client 4.8 (Engine.IO 4), raw events.
 *
 * Warm-up: before the measured window every mode repeats its own work a little (`warmup_seconds` of
 * the rtt loop; `warmup` broadcasts, posts or connections on the `warmup` command), so that Node's JIT
 * and every server's caches are warm; warm-up messages are marked and not counted.
 *
 * Modes (config.mode):
 * - `rtt`: `sockets` sockets, each a loop of one operation at a time (`op`: `virtual` is
 *   `GET /bench/echo?x=1`, `echo` a raw `echo` event with an ack) for `seconds` or `max_ops` per socket;
 * - `fanout-recv`: `sockets` sockets join `room` and count/time every `fanout` message
 *   (the payload carries its send time);
 * - `fanout-send`: one socket sends `count` `fanout` events, each after the previous one's ack;
 * - `pubsub-watch`: `sockets` sails.io.js sockets `GET /user`, then count/time every `user` created message;
 * - `pubsub-post`: `sockets` sails.io.js sockets `POST /user` `count` records between them, one at a time each;
 * - `idle`: on each `go`, connect sockets (`concurrency` at a time) up to the next of `stages` (cumulative
 *   counts: 250 then 2500) and hold them; `mark` notes each
 *   one's heartbeats so far, `check` reports how many are still connected and how many had a heartbeat
 *   (a ping from an Engine.IO 4 server, a pong to an Engine.IO 3 client's ping) since the mark.
 */

const readline = require('readline');
const { performance } = require('perf_hooks');

const cfg = JSON.parse(process.argv[2]);
const wall = () => performance.timeOrigin + performance.now(); // ms since the epoch, comparable across processes
const mono = () => performance.now();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const deadline = setTimeout(() => {
  out({ event: 'error', error: 'worker deadline of ' + cfg.deadline + ' s reached' });
  process.exit(3);
}, (cfg.deadline || 120) * 1000);
deadline.unref();

// ------------------------------------------------------------------------------------------- clients
let sailsIO = null;
function sailsClient() {
  if (!sailsIO) {
    sailsIO = require('sails.io.js')(require('socket.io-client-v2'));
    sailsIO.sails.autoConnect = false;
    sailsIO.sails.environment = 'production'; // no logs
    sailsIO.sails.reconnection = false;
  }
  return sailsIO;
}

// Every client says it comes from a page on http://127.0.0.1: Sails (and trisails, with the same
// setting) refuse a handshake whose Origin is not in sockets.onlyAllowOrigins, a missing one included.
const ORIGIN = { origin: 'http://127.0.0.1' };

const ioOptions = {
  extraHeaders: ORIGIN,
  transports: ['websocket'],
  reconnection: false,
  forceNew: true,
  multiplex: false,
  perMessageDeflate: false,
  timeout: 20000,
};

function connectOne() {
  return new Promise((resolve, reject) => {
    let socket;
    if (cfg.client === 'sails') {
      socket = sailsClient().sails.connect(cfg.url, {
        transports: ['websocket'],
        reconnection: false,
        multiplex: false,
        environment: 'production',
        initialConnectionHeaders: ORIGIN,
      });
    } else if (cfg.client === 'v2') {
      socket = require('socket.io-client-v2')(cfg.url, ioOptions);
    } else if (cfg.client === 'v4') {
      socket = require('socket.io-client')(cfg.url, ioOptions);
    } else {
      throw new Error('unknown client ' + cfg.client);
    }
    const timer = setTimeout(() => fail(new Error('connect timeout')), 30000);
    let settled = false;
    function fail(error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { socket.disconnect(); } catch (e) { /* gone */ }
      reject(error);
    }
    socket.on('connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.__connected = true;
      socket.__beats = 0;
      // heartbeats seen: Engine.IO 3 clients ping and get a pong; Engine.IO 4 servers ping the client
      if (cfg.client === 'v2') socket.io.on('pong', () => { socket.__beats += 1; });
      if (cfg.client === 'v4') socket.io.on('ping', () => { socket.__beats += 1; });
      resolve(socket);
    });
    socket.on('connect_error', (error) => fail(error instanceof Error ? error : new Error(String(error))));
    socket.on('error', (error) => fail(error instanceof Error ? error : new Error(String(error))));
    socket.on('disconnect', () => {
      if (socket.__connected) {
        socket.__connected = false;
        disconnects += 1;
      }
    });
  });
}

let disconnects = 0;
let sockets = [];
let connectFailures = 0;
let lastError = null;

async function connectMany(n, concurrency) {
  const result = new Array(n);
  let next = 0;
  async function lane() {
    while (next < n) {
      const i = next++;
      try {
        result[i] = await connectOne();
      } catch (error) {
        connectFailures += 1;
        lastError = String(error && error.message || error);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, lane));
  return result.filter(Boolean);
}

function emitAck(socket, event, payload, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(event + ' ack timeout')), timeoutMs || 10000);
    socket.emit(event, payload, (answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

function request(socket, method, url, data) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(method + ' ' + url + ' timeout')), 10000);
    socket.request({ method: method, url: url, data: data }, (body, jwr) => {
      clearTimeout(timer);
      resolve({ body: body, status: jwr && jwr.statusCode });
    });
  });
}

const round = (x) => Math.round(x * 1000) / 1000;

// ------------------------------------------------------------------------------------------- commands
const waiting = {};
function command(name) {
  return new Promise((resolve) => { waiting[name] = resolve; });
}
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const name = line.trim();
  if (name === 'exit') return shutdown(0);
  if (waiting[name]) {
    const resolve = waiting[name];
    delete waiting[name];
    resolve();
  } else if (name === 'finish' || name === 'check' || name === 'mark') {
    handlers[name] && handlers[name]();
  }
});
lines.on('close', () => shutdown(0));
const handlers = {};

function shutdown(code) {
  for (const socket of sockets) {
    try { socket.disconnect(); } catch (e) { /* gone */ }
  }
  setTimeout(() => process.exit(code), 200);
}

// ------------------------------------------------------------------------------------------- modes
async function rtt() {
  sockets = await connectMany(cfg.sockets, cfg.sockets);
  if (sockets.length < cfg.sockets) throw new Error('only ' + sockets.length + ' of ' + cfg.sockets + ' sockets connected: ' + lastError);
  // warm-up, outside the measured window: the same loop for `warmup_seconds` (a JIT compiles its hot
  // paths, caches fill), then one more operation per socket
  const warmUntil = mono() + (cfg.warmup_seconds || 0) * 1000;
  await Promise.all(sockets.map(async (socket) => {
    for (let i = 0; i < cfg.max_ops && mono() < warmUntil; i++) await operation(socket);
    await operation(socket);
  }));
  out({ event: 'ready' });
  await command('go');
  const start = mono();
  const until = start + cfg.seconds * 1000;
  const latencies = [];
  let errors = 0;
  await Promise.all(sockets.map(async (socket) => {
    for (let i = 0; i < cfg.max_ops && mono() < until; i++) {
      const t0 = mono();
      const ok = await operation(socket).catch(() => false);
      latencies.push(round(mono() - t0));
      if (!ok) errors += 1;
    }
  }));
  out({ event: 'result', ops: latencies.length, errors: errors, elapsed: (mono() - start) / 1000, lat: latencies, disconnects: disconnects });
}

async function operation(socket) {
  if (cfg.op === 'virtual') {
    const answer = await request(socket, 'get', '/bench/echo?x=1');
    return answer.status === 200 && answer.body && answer.body.x === '1';
  }
  const answer = await emitAck(socket, 'echo', { x: 1 });
  return answer && answer.x === 1;
}

function receiver(eventName, accept) {
  // counts and times every `eventName` message; `accept(message)` gives its send time, or null to ignore it
  const expected = cfg.sockets * cfg.expected;
  const latencies = [];
  let first = null;
  let last = null;
  let reported = false;
  function report() {
    if (reported) return;
    reported = true;
    out({ event: 'result', delivered: latencies.length, expected: expected, first: first, last: last, lat: latencies, disconnects: disconnects, failures: connectFailures });
  }
  handlers.finish = report;
  for (const socket of sockets) {
    socket.on(eventName, (message) => {
      const sent = accept(message);
      if (sent === null) return;
      const now = wall();
      if (first === null) first = now;
      last = now;
      latencies.push(round(now - sent));
      if (latencies.length >= expected) report();
    });
  }
}

async function fanoutRecv() {
  sockets = await connectMany(cfg.sockets, cfg.concurrency || 50);
  for (const socket of sockets) await emitAck(socket, 'join', cfg.room);
  receiver('fanout', (payload) => (payload.w ? null : payload.t));
  out({ event: 'ready', connected: sockets.length, failures: connectFailures, error: lastError });
}

async function fanoutSend() {
  sockets = await connectMany(1, 1);
  if (!sockets.length) throw new Error('the sender could not connect: ' + lastError);
  const socket = sockets[0];
  const base = JSON.stringify({ t: wall(), i: 0, pad: '' }).length;
  out({ event: 'ready' });
  await command('warmup');
  for (let i = 0; i < (cfg.warmup || 0); i++) {  // marked `w`: receivers do not count them
    await emitAck(socket, 'fanout', { room: cfg.room, payload: { t: wall(), i: i, w: 1 } }, 30000);
  }
  out({ event: 'warmed' });
  await command('go');
  const start = mono();
  const acks = [];
  for (let i = 0; i < cfg.count; i++) {
    const payload = { t: wall(), i: i, pad: 'x'.repeat(Math.max(0, cfg.payload_bytes - base - String(i).length + 1)) };
    const t0 = mono();
    await emitAck(socket, 'fanout', { room: cfg.room, payload: payload }, 30000);
    acks.push(round(mono() - t0));
  }
  out({ event: 'result', sent: acks.length, elapsed: (mono() - start) / 1000, lat: acks, payload_bytes: JSON.stringify({ t: wall(), i: 0, pad: 'x'.repeat(cfg.payload_bytes - base) }).length });
}

async function pubsubWatch() {
  sockets = await connectMany(cfg.sockets, cfg.concurrency || 50);
  for (const socket of sockets) {
    const answer = await request(socket, 'get', '/user');
    if (answer.status !== 200) throw new Error('GET /user answered ' + answer.status);
  }
  receiver('user', (message) => {
    if (!message || message.verb !== 'created' || !message.data) return null;
    const name = String(message.data.name);
    return name.startsWith('t:') ? parseFloat(name.slice(2)) : null;  // 'w:' records are the warm-up
  });
  out({ event: 'ready', connected: sockets.length, failures: connectFailures, error: lastError });
}

async function pubsubPost() {
  sockets = await connectMany(cfg.sockets, cfg.sockets);
  if (sockets.length < cfg.sockets) throw new Error('posters could not connect: ' + lastError);
  out({ event: 'ready' });
  await command('warmup');
  for (let i = 0; i < (cfg.warmup || 0); i++) {
    await request(sockets[i % sockets.length], 'post', '/user', { name: 'w:' + wall(), age: i });
  }
  out({ event: 'warmed' });
  await command('go');
  const start = mono();
  const latencies = [];
  let errors = 0;
  let next = 0;
  await Promise.all(sockets.map(async (socket) => {
    while (next < cfg.count) {
      const i = next++;
      const t0 = mono();
      const answer = await request(socket, 'post', '/user', { name: 't:' + wall(), age: i }).catch(() => ({ status: 0 }));
      latencies.push(round(mono() - t0));
      if (answer.status !== 200 && answer.status !== 201) errors += 1;
    }
  }));
  out({ event: 'result', ops: latencies.length, errors: errors, elapsed: (mono() - start) / 1000, lat: latencies });
}

async function idle() {
  out({ event: 'ready' });
  await command('warmup');
  if (cfg.warmup) {  // connect and disconnect a few sockets first, outside the measured window
    const warm = await connectMany(cfg.warmup, cfg.concurrency || 50);
    for (const socket of warm) { socket.__connected = false; socket.disconnect(); }
    connectFailures = 0;
  }
  out({ event: 'warmed' });
  handlers.mark = () => {
    for (const socket of sockets) socket.__mark = socket.__beats;
    out({ event: 'marked' });
  };
  handlers.check = () => {
    let connected = 0;
    let beating = 0;
    for (const socket of sockets) {
      if (socket.__connected) connected += 1;
      if (socket.__connected && socket.__beats > socket.__mark) beating += 1;
    }
    out({ event: 'check', connected: connected, beating: beating, disconnects: disconnects });
  };
  // stages: on each `go`, connect more sockets, up to the stage's count (cumulative)
  for (const target of cfg.stages) {
    await command('go');
    const start = mono();
    const failedBefore = connectFailures;
    const more = await connectMany(Math.max(0, target - sockets.length - connectFailures), cfg.concurrency || 50);
    sockets = sockets.concat(more);
    out({ event: 'connected', ok: more.length, total: sockets.length, failed: connectFailures - failedBefore,
          elapsed: (mono() - start) / 1000, error: lastError });
  }
}

const modes = {
  'rtt': rtt,
  'fanout-recv': fanoutRecv,
  'fanout-send': fanoutSend,
  'pubsub-watch': pubsubWatch,
  'pubsub-post': pubsubPost,
  'idle': idle,
};

modes[cfg.mode]().catch((error) => {
  out({ event: 'error', error: String(error && error.stack || error) });
  shutdown(2);
});
