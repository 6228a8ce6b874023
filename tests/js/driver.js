#!/usr/bin/env node
/*
 * driver.js: real Socket.IO clients, scriptable over JSON lines.
 *
 * trisails must be wire-compatible with unmodified JavaScript clients. This long-running process holds
 * any number of them, each under a name chosen by the caller, and lets a test script them:
 *
 *   kind "v4"    socket.io-client 4.8.1 (Engine.IO rev 4, Socket.IO protocol v5)
 *   kind "v2"    socket.io-client 2.0.3 (Engine.IO rev 3, Socket.IO protocol v4)
 *   kind "sails" sails.io.js 1.2.1 wrapped around socket.io-client 2.0.3, as a Node app would use it
 *
 * Protocol (one JSON object per line; stdout carries nothing else, diagnostics go to stderr):
 *
 *   stdin, commands:   {"id": <any>, "op": "<op>", ...}
 *   stdout, replies:   {"id": <same>, "ok": true, ...}  or  {"id": <same>, "ok": false, "error": "...", "code": "..."}
 *   stdout, events:    {"event": "<name>", "socket": "<socket name>", "args": [...], "ack": <token>?}
 *
 * Commands (op):
 *   connect     {name, kind, url, namespace="/", options={}, wait=true, timeout=ms?, listen=[...], heartbeat=false}
 *               v4/v2: io(url + namespace, {...options, forceNew: true}); sails: io.sails.connect(url, options)
 *               with io.sails.autoConnect=false and environment='production'. Replies {socket_id, transport}
 *               once connected (socket_id = socket.id). A connect error (v4: connect_error; 2.x:
 *               connect_error, connect_timeout or error) or the timeout → ok:false, code "connect_error" /
 *               "connect_timeout", details.error, and the socket is closed and forgotten. With wait=false the
 *               reply is immediate (sails requests made meanwhile are queued by sails.io.js itself).
 *               A name can be reused only once its previous socket is disconnected.
 *   listen      {name, event | events: [...]}  sails only: subscribe with socket.on(event); no-op for v2/v4,
 *               which report every event they receive.
 *   emit        {name, event, args=[], ack=false, timeout=ms?}  reply {ack: [...]} when acked, {} without ack.
 *               v4 with timeout uses socket.timeout(ms).emit; v2/sails use a driver timer. Timeout → code
 *               "ack_timeout"; socket lost before the ack → code "disconnected". On a sails socket this emits
 *               on the raw socket.io-client 2.0.3 socket (socket._raw).
 *   ack         {name, ack: <token>, args=[]}  answers an event the server sent with an ack callback (the event
 *               line carried "ack": <token>).
 *   request     {name, method="get", url, data?, headers?, callback=true, timeout=ms?}  sails only:
 *               socket.request({method, url, data, headers}, cb) → reply {body, jwr: {body, headers,
 *               statusCode, error?}}. The "socket disconnected" callback of sails.io.js → code "disconnected"
 *               (with details.jwr). callback=false sends the request without a callback and replies at once.
 *   disconnect  {name}  closes the client socket; replies {reason} after the engine is closed.
 *   reconnect   {name, wait=true, timeout=ms?}  socket.connect() (v2/v4) or sails socket.reconnect().
 *   engine_state {name}  → {transport, socket_id, sid, connected, readyState, recovered}: the engine's transport
 *               name ("websocket" | "polling"), socket.id, the Engine.IO session id, readyState, and (v4)
 *               socket.recovered, whether the last (re)connection recovered the socket's state.
 *   list        → {sockets: [{name, kind, connected}]}
 *   quit        closes every socket, replies, and exits 0. EOF on stdin does the same.
 *
 * Values: binary data travels as {"$bin": "<base64>"} both ways (a Buffer, ArrayBuffer or typed array from a
 * client; a Node Buffer towards a client). Error objects reach the caller as {"$error": {name, message, data?,
 * type?, description?}}. An exception inside one command becomes that command's ok:false reply; it never
 * stops the driver.
 *
 * Event reporting: v4 reports custom events through socket.onAny; v2 through its onevent hook; sails
 * sockets only report events subscribed with "listen" (that is how sails.io.js apps receive events). All
 * kinds report connect, disconnect (reason), connect_error and the reconnect family; with heartbeat=true also
 * ping (and pong for the 2.x clients).
 */
'use strict';

const readline = require('readline');
const util = require('util');

// ---------------------------------------------------------------------------------------------------------
// stdout belongs to the protocol. Anything a library prints goes to stderr instead.
// ---------------------------------------------------------------------------------------------------------
const protocolOut = process.stdout;
for (const method of ['log', 'info', 'debug', 'warn', 'error', 'trace', 'dir']) {
  console[method] = (...args) => process.stderr.write(util.format(...args) + '\n');
}

function diag(...args) {
  process.stderr.write('[driver] ' + util.format(...args) + '\n');
}

function writeLine(obj) {
  let line;
  try {
    line = JSON.stringify(obj);
  } catch (err) {
    line = JSON.stringify({
      id: obj && obj.id !== undefined ? obj.id : null,
      ok: false,
      code: 'exception',
      error: 'could not encode a driver message as JSON: ' + err.message,
    });
  }
  protocolOut.write(line + '\n');
}

process.on('uncaughtException', (err) => diag('uncaught exception (ignored):', err && err.stack || err));
process.on('unhandledRejection', (err) => diag('unhandled rejection (ignored):', err && err.stack || err));

// ---------------------------------------------------------------------------------------------------------
// The three client libraries
// ---------------------------------------------------------------------------------------------------------
let ioV4, ioV2, ioSails;
try {
  ioV4 = require('socket.io-client-v4').io;
  ioV2 = require('socket.io-client');
  // sails.io.js decorates the io function it is given (io.sails, io.socket) and returns it. In Node it would
  // also auto-connect `io.socket` one tick later; turning autoConnect off synchronously prevents that.
  ioSails = require('sails.io.js')(ioV2);
  ioSails.sails.autoConnect = false;
  ioSails.sails.environment = 'production'; // silences its console banners
} catch (err) {
  diag('cannot load the JavaScript clients (run `npm ci --prefix tests/js`):', err.message);
  process.exit(3);
}

// ---------------------------------------------------------------------------------------------------------
// Values on the wire
// ---------------------------------------------------------------------------------------------------------
class DriverError extends Error {
  constructor(message, code, details) {
    super(message);
    this.code = code || 'error';
    if (details !== undefined) this.details = details;
  }
}

const MAX_DEPTH = 40;

function errorToWire(err, seen, depth) {
  const out = {name: err.name || 'Error', message: String(err.message)};
  if (err.data !== undefined) out.data = toWire(err.data, seen, depth + 1);
  if (err.type !== undefined && typeof err.type !== 'object') out.type = err.type;
  if (err.code !== undefined && typeof err.code !== 'object') out.code = err.code;
  const desc = err.description;
  if (desc !== undefined && desc !== null) {
    out.description = typeof desc === 'object' ? String(desc.message || desc.description || desc) : desc;
  }
  return {$error: out};
}

/** A JS value → something JSON.stringify renders faithfully (binary as $bin, errors as $error). */
function toWire(value, seen = new Set(), depth = 0) {
  if (value === undefined) return null;
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    case 'function':
      return {$function: value.name || 'anonymous'};
    case 'symbol':
      return value.toString();
  }
  if (Buffer.isBuffer(value)) return {$bin: value.toString('base64')};
  if (value instanceof ArrayBuffer) return {$bin: Buffer.from(value).toString('base64')};
  if (ArrayBuffer.isView(value)) {
    return {$bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')};
  }
  if (depth > MAX_DEPTH || seen.has(value)) return {$circular: true};
  if (value instanceof Error) return errorToWire(value, seen, depth);
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => toWire(item, seen, depth + 1));
    if (typeof value.toJSON === 'function') return toWire(value.toJSON(), seen, depth + 1);
    const out = {};
    for (const key of Object.keys(value)) {
      if (value[key] !== undefined) out[key] = toWire(value[key], seen, depth + 1);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

/** JSON from the caller → JS values for a client ({"$bin": b64} becomes a Buffer). */
function fromWire(value) {
  if (Array.isArray(value)) return value.map(fromWire);
  if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === '$bin' && typeof value.$bin === 'string') {
      return Buffer.from(value.$bin, 'base64');
    }
    const out = {};
    for (const key of keys) out[key] = fromWire(value[key]);
    return out;
  }
  return value;
}

function messageOf(err) {
  if (err === undefined || err === null) return 'unknown error';
  if (typeof err === 'string') return err;
  if (err.message) return String(err.message);
  try {
    return JSON.stringify(toWire(err));
  } catch (_) {
    return String(err);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------------------
const KINDS = new Set(['v4', 'v2', 'sails']);

// Events the 2.x client emits itself (a server event of the same name reaches the same listeners).
const V2_LIFECYCLE = [
  'connect', 'connect_error', 'connect_timeout', 'disconnect', 'error',
  'reconnect', 'reconnect_attempt', 'reconnecting', 'reconnect_error', 'reconnect_failed',
];
const V4_SOCKET_LIFECYCLE = ['connect', 'connect_error', 'disconnect'];
const V4_MANAGER_LIFECYCLE = ['reconnect', 'reconnect_attempt', 'reconnect_error', 'reconnect_failed', 'error'];

/** One named client socket and the driver's bookkeeping for it. */
class Client {
  constructor(name, kind, cmd) {
    this.name = name;
    this.kind = kind;
    this.url = cmd.url;
    this.namespace = cmd.namespace || '/';
    this.options = Object.assign({}, cmd.options || {});
    this.heartbeat = !!cmd.heartbeat;
    this.sails = null; // the SailsSocket, for kind "sails"
    this.raw = null; // the socket.io-client Socket (for sails: sails._raw)
    this.instrumented = null; // the raw socket our listeners are attached to
    this.listened = new Set(); // sails: custom events subscribed with "listen"
    this.serverAcks = new Map(); // token → ack function handed to us with a server event
    this.nextAckToken = 1;
    this.pending = new Set(); // fail(code, message) of emits waiting for an ack
    this.closed = false;
  }

  manager() {
    return this.raw ? this.raw.io : null;
  }

  engine() {
    const manager = this.manager();
    return manager ? manager.engine : null;
  }

  connected() {
    return !!(this.raw && this.raw.connected);
  }

  report(event, args) {
    const line = {event, socket: this.name, args: []};
    const list = Array.from(args);
    if (list.length && typeof list[list.length - 1] === 'function') {
      const token = this.nextAckToken++;
      this.serverAcks.set(token, list.pop());
      line.ack = token;
    }
    line.args = toWire(list);
    writeLine(line);
  }

  failPending(code, message) {
    const pending = Array.from(this.pending);
    this.pending.clear();
    for (const fail of pending) fail(code, message);
  }

  /** Attach the driver's listeners to the current raw socket (again after a sails reconnect()). */
  instrument() {
    const raw = this.raw;
    if (!raw || this.instrumented === raw) return;
    this.instrumented = raw;
    const self = this;
    const lifecycle = (event, shape) => (...args) => self.report(event, shape ? shape(args) : args);
    const disconnectShape = (args) => [args[0]];

    if (this.kind === 'v4') {
      for (const ev of V4_SOCKET_LIFECYCLE) {
        raw.on(ev, lifecycle(ev, ev === 'disconnect' ? disconnectShape : null));
      }
      for (const ev of V4_MANAGER_LIFECYCLE) raw.io.on(ev, lifecycle(ev));
      if (this.heartbeat) raw.io.on('ping', lifecycle('ping'));
      raw.onAny((event, ...args) => self.report(event, args));
      raw.on('disconnect', () => self.failPending('disconnected', 'the socket disconnected before the ack arrived'));
      return;
    }

    // socket.io-client 2.0.3, directly or under sails.io.js
    const names = V2_LIFECYCLE.concat(this.heartbeat ? ['ping', 'pong'] : []);
    for (const ev of names) raw.on(ev, lifecycle(ev, ev === 'disconnect' ? disconnectShape : null));
    raw.on('disconnect', () => self.failPending('disconnected', 'the socket disconnected before the ack arrived'));
    if (this.kind === 'v2') {
      // 2.x has no onAny: wrap the per-socket packet handler. Events named like a lifecycle event are
      // dispatched to the listeners above, so they are reported once, there.
      const original = raw.onevent;
      const skip = new Set(names);
      raw.onevent = function (packet) {
        const data = packet.data || [];
        if (!skip.has(data[0])) {
          const args = data.slice(1);
          if (packet.id !== null && packet.id !== undefined) args.push(this.ack(packet.id));
          self.report(String(data[0]), args);
          // Our copy of the ack function is the one the test calls; give the app path a no-op twin.
          if (packet.id !== null && packet.id !== undefined) {
            return original.call(this, Object.assign({}, packet, {id: undefined, data: data.slice()}));
          }
        }
        return original.call(this, packet);
      };
    } else {
      for (const ev of this.listened) this.attachSailsListener(ev);
    }
  }

  attachSailsListener(event) {
    const self = this;
    this.sails.on(event, (...args) => self.report(event, args));
  }
}

const clients = new Map();

function getClient(cmd) {
  const name = cmd.name;
  const client = clients.get(name);
  if (!client) throw new DriverError(`no socket named ${JSON.stringify(name)}`, 'no_such_socket');
  return client;
}

function waitForConnect(client, timeoutMs) {
  return new Promise((resolve, reject) => {
    const raw = client.raw;
    let timer = null;
    const failureEvents = client.kind === 'v4' ? ['connect_error'] : ['connect_error', 'connect_timeout', 'error'];
    const cleanup = () => {
      if (timer) clearTimeout(timer);
      raw.off('connect', onConnect);
      for (const ev of failureEvents) raw.off(ev, onFailure);
    };
    const onConnect = () => {
      cleanup();
      resolve({socket_id: raw.id, transport: transportName(client)});
    };
    const onFailure = (err) => {
      cleanup();
      reject(new DriverError(messageOf(err), 'connect_error', {error: toWire(err)}));
    };
    raw.on('connect', onConnect);
    for (const ev of failureEvents) raw.on(ev, onFailure);
    if (timeoutMs) {
      timer = setTimeout(() => {
        cleanup();
        reject(new DriverError(`not connected after ${timeoutMs} ms`, 'connect_timeout'));
      }, timeoutMs);
    }
    if (raw.connected) onConnect();
  });
}

function transportName(client) {
  const engine = client.engine();
  return engine && engine.transport ? engine.transport.name : null;
}

function closeEngineQuietly(client) {
  try {
    if (client.raw) client.raw.disconnect();
  } catch (err) {
    diag(`closing ${client.name}:`, err.message);
  }
}

/** Resolves when the client's engine is closed (or after `limitMs`, whichever is first). */
function engineClosed(client, limitMs = 3000) {
  return new Promise((resolve) => {
    const started = Date.now();
    const check = () => {
      const engine = client.engine();
      if (!engine || engine.readyState === 'closed' || Date.now() - started > limitMs) return resolve();
      setTimeout(check, 5);
    };
    check();
  });
}

// ---------------------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------------------
const ops = {};

ops.connect = async (cmd) => {
  const {name, kind} = cmd;
  if (typeof name !== 'string' || !name) throw new DriverError('connect needs a "name"', 'bad_command');
  if (!KINDS.has(kind)) throw new DriverError(`unknown kind ${JSON.stringify(kind)} (v4, v2 or sails)`, 'bad_command');
  if (typeof cmd.url !== 'string') throw new DriverError('connect needs a "url"', 'bad_command');
  const previous = clients.get(name);
  if (previous) {
    if (previous.connected()) throw new DriverError(`socket ${JSON.stringify(name)} is already connected`, 'name_in_use');
    closeEngineQuietly(previous);
    clients.delete(name);
  }

  const client = new Client(name, kind, cmd);
  const namespace = client.namespace === '/' ? '' : client.namespace;
  const options = fromWire(client.options);
  if (kind === 'v4') {
    client.raw = ioV4(client.url + namespace, Object.assign({}, options, {forceNew: true}));
  } else if (kind === 'v2') {
    client.raw = ioV2(client.url + namespace, Object.assign({}, options, {forceNew: true}));
  } else {
    // sails.io.js copies only its SOCKET_OPTIONS (transports, query, headers, initialConnectionHeaders,
    // reconnection*, path, multiplex, timeout, ...) and opens a new engine connection per connect().
    client.sails = ioSails.sails.connect(client.url + namespace, options);
    client.raw = client.sails._raw;
    for (const ev of [].concat(cmd.listen || [])) client.listened.add(ev);
  }
  clients.set(name, client);
  client.instrument();

  if (cmd.wait === false) return {socket_id: client.raw.id || null, transport: transportName(client)};
  try {
    return await waitForConnect(client, cmd.timeout);
  } catch (err) {
    closeEngineQuietly(client);
    clients.delete(name);
    throw err;
  }
};

ops.listen = async (cmd) => {
  const client = getClient(cmd);
  const events = [].concat(cmd.events || [], cmd.event !== undefined ? [cmd.event] : []);
  if (client.kind !== 'sails') return {events: []}; // v2/v4 report every event already
  for (const ev of events) {
    if (typeof ev !== 'string') throw new DriverError('event names are strings', 'bad_command');
    if (client.listened.has(ev)) continue;
    client.listened.add(ev);
    client.attachSailsListener(ev);
  }
  return {events: Array.from(client.listened)};
};

ops.emit = async (cmd) => {
  const client = getClient(cmd);
  if (typeof cmd.event !== 'string') throw new DriverError('emit needs an "event" string', 'bad_command');
  const raw = client.raw;
  const args = fromWire(cmd.args || []);
  if (!Array.isArray(args)) throw new DriverError('"args" must be a list', 'bad_command');
  if (!cmd.ack) {
    raw.emit(cmd.event, ...args);
    return {};
  }
  const timeoutMs = typeof cmd.timeout === 'number' ? cmd.timeout : undefined;
  return await new Promise((resolve, reject) => {
    let settled = false;
    let timer = null;
    const fail = (code, message) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      client.pending.delete(fail);
      reject(new DriverError(message, code));
    };
    const succeed = (ackArgs) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      client.pending.delete(fail);
      resolve({ack: toWire(ackArgs)});
    };
    client.pending.add(fail);
    if (client.kind === 'v4') {
      // With a timeout (per emit or the ackTimeout option) or retries, socket.io-client 4 calls the
      // callback error first: (err, ...ackArgs).
      const errorFirst = timeoutMs !== undefined || client.options.ackTimeout !== undefined || !!client.options.retries;
      const callback = (...received) => {
        if (errorFirst) {
          const err = received.shift();
          if (err) {
            const timedOut = /timed out/.test(messageOf(err));
            return fail(timedOut ? 'ack_timeout' : 'disconnected', messageOf(err));
          }
        }
        succeed(received);
      };
      const emitter = timeoutMs !== undefined ? raw.timeout(timeoutMs) : raw;
      emitter.emit(cmd.event, ...args, callback);
    } else {
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => fail('ack_timeout', `no ack for ${JSON.stringify(cmd.event)} within ${timeoutMs} ms`), timeoutMs);
      }
      raw.emit(cmd.event, ...args, (...received) => succeed(received));
    }
  });
};

ops.ack = async (cmd) => {
  const client = getClient(cmd);
  const fn = client.serverAcks.get(cmd.ack);
  if (!fn) throw new DriverError(`no pending server ack ${JSON.stringify(cmd.ack)} on ${client.name}`, 'no_such_ack');
  client.serverAcks.delete(cmd.ack);
  fn(...fromWire(cmd.args || []));
  return {};
};

function jwrToWire(jwr) {
  if (!jwr || typeof jwr !== 'object') return toWire(jwr);
  const out = {body: toWire(jwr.body), headers: toWire(jwr.headers || {}), statusCode: jwr.statusCode};
  if (jwr.error) out.error = messageOf(jwr.error);
  return out;
}

ops.request = async (cmd) => {
  const client = getClient(cmd);
  if (client.kind !== 'sails') throw new DriverError('request is for sails sockets only', 'bad_command');
  const options = {method: cmd.method || 'get', url: cmd.url};
  if (cmd.data !== undefined && cmd.data !== null) options.data = fromWire(cmd.data);
  if (cmd.headers !== undefined && cmd.headers !== null) options.headers = fromWire(cmd.headers);
  if (cmd.callback === false) {
    client.sails.request(options);
    return {};
  }
  const timeoutMs = typeof cmd.timeout === 'number' ? cmd.timeout : undefined;
  return await new Promise((resolve, reject) => {
    let settled = false;
    let timer = null;
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        settled = true;
        reject(new DriverError(`no response to ${options.method} ${options.url} within ${timeoutMs} ms`, 'request_timeout'));
      }, timeoutMs);
    }
    client.sails.request(options, (body, jwr) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (body instanceof Error) {
        // sails.io.js calls back (Error, {body: null, statusCode: 0, headers: {}}) on disconnect.
        reject(new DriverError(body.message, 'disconnected', {jwr: jwrToWire(jwr)}));
        return;
      }
      resolve({body: toWire(body), jwr: jwrToWire(jwr)});
    });
  });
};

ops.disconnect = async (cmd) => {
  const client = getClient(cmd);
  let reason = null;
  const wasConnected = client.connected();
  const sawDisconnect = wasConnected
    ? new Promise((resolve) => client.raw.once('disconnect', (r) => { reason = r; resolve(); }))
    : Promise.resolve();
  if (client.kind === 'sails' && wasConnected) {
    client.sails.disconnect();
  } else {
    client.raw.disconnect(); // also stops a reconnection in progress
  }
  await sawDisconnect;
  await engineClosed(client);
  client.failPending('disconnected', 'the socket was disconnected by the test');
  return {reason, wasConnected};
};

ops.reconnect = async (cmd) => {
  const client = getClient(cmd);
  if (client.connected()) throw new DriverError(`socket ${client.name} is connected`, 'bad_state');
  if (client.kind === 'sails') {
    // sails.io.js builds a brand-new raw socket; listeners added with on() after the first connect stay
    // on the old one. The driver re-attaches its own (lifecycle and "listen"ed events).
    client.sails.reconnect();
    client.raw = client.sails._raw;
    client.instrument();
  } else {
    client.raw.connect();
  }
  if (cmd.wait === false) return {socket_id: client.raw.id || null, transport: transportName(client)};
  return await waitForConnect(client, cmd.timeout);
};

ops.engine_state = async (cmd) => {
  const client = getClient(cmd);
  const engine = client.engine();
  return {
    transport: transportName(client),
    socket_id: client.raw ? client.raw.id || null : null,
    sid: engine ? engine.id || null : null,
    connected: client.connected(),
    readyState: engine ? engine.readyState : null,
    recovered: !!(client.raw && client.raw.recovered),
  };
};

ops.list = async () => ({
  sockets: Array.from(clients.values()).map((c) => ({name: c.name, kind: c.kind, connected: c.connected()})),
});

async function closeAll() {
  const all = Array.from(clients.values());
  for (const client of all) closeEngineQuietly(client);
  await Promise.all(all.map((client) => engineClosed(client, 1000)));
}

let quitting = false;

function quit(reply) {
  if (quitting) return;
  quitting = true;
  closeAll().finally(() => {
    const exit = () => process.exit(0);
    if (reply) protocolOut.write(JSON.stringify(reply) + '\n', exit);
    else exit();
  });
}

// ---------------------------------------------------------------------------------------------------------
// Main loop
// ---------------------------------------------------------------------------------------------------------
function handleLine(line) {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    writeLine({id: null, ok: false, code: 'bad_json', error: 'not JSON: ' + err.message});
    return;
  }
  if (!cmd || typeof cmd !== 'object' || Array.isArray(cmd)) {
    writeLine({id: null, ok: false, code: 'bad_command', error: 'a command is a JSON object'});
    return;
  }
  const id = cmd.id === undefined ? null : cmd.id;
  if (cmd.op === 'quit') {
    quit({id, ok: true});
    return;
  }
  const handler = Object.prototype.hasOwnProperty.call(ops, cmd.op) ? ops[cmd.op] : null;
  if (!handler) {
    writeLine({id, ok: false, code: 'bad_command', error: `unknown op ${JSON.stringify(cmd.op)}`});
    return;
  }
  let promise;
  try {
    promise = Promise.resolve(handler(cmd));
  } catch (err) {
    promise = Promise.reject(err);
  }
  promise.then(
    (result) => writeLine(Object.assign({}, result, {id, ok: true})),
    (err) => {
      // A DriverError is an expected failure with a code; anything else is a library exception.
      const expected = err instanceof DriverError;
      const reply = {id, ok: false, code: expected ? err.code : 'exception', error: messageOf(err)};
      if (expected && err.details !== undefined) reply.details = err.details;
      if (!expected) diag(`${cmd.op} failed:`, err && err.stack || err);
      writeLine(reply);
    },
  );
}

const input = readline.createInterface({input: process.stdin, crlfDelay: Infinity, terminal: false});
input.on('line', handleLine);
input.on('close', () => quit(null));
diag(`ready (node ${process.version}, pid ${process.pid})`);
