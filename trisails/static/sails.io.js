/**
 * sails.io.js: the trisails browser client
 * ==========================================
 *
 * WHAT THIS IS
 *   A single-file, dependency-free (ES2017, no build step) replacement for the `sails.io.js` that Sails
 *   apps ship. Pages written for Sails keep working unchanged:
 *
 *       <script src="/js/dependencies/sails.io.js"></script>
 *       <script>
 *         io.socket.get('/user', function (body, jwr) { ... });
 *         io.socket.on('user', function (msg) { ... });
 *       </script>
 *
 *   It is our own code, written from the protocol specifications; it bundles no socket.io-client.
 *
 * THE WIRE IT SPEAKS
 *   Engine.IO revision 4 over a WebSocket (`EIO=4&transport=websocket`), falling back to HTTP
 *   long-polling only when `transports` lists "polling" and the websocket cannot be opened.
 *     URL   <url><path>/?__sails_io_sdk_version=1.2.1&__sails_io_sdk_platform=browser
 *                        &__sails_io_sdk_language=javascript&__trisails_client=1[&<query>]
 *                        &EIO=4&transport=websocket
 *     Engine.IO   the server opens with `0{"sid",pingInterval,pingTimeout,maxPayload}`, pings with `2`
 *                 (we answer `3`); silence for pingInterval+pingTimeout means the connection is dead.
 *                 `4<packet>` carries a Socket.IO packet; a binary frame is a raw attachment.
 *     Socket.IO   (protocol v5, namespace "/") we send `40`, the server answers `40{"sid":...}` or
 *                 refuses with `44{"message":...}`. Events are `42["name",...args]`, with an ack id
 *                 `42<id>[...]` answered by `43<id>[...]`; binary uses `45<n>-` / `46<n>-` packets
 *                 whose ArrayBuffers travel as `{"_placeholder":true,"num":i}` plus n binary frames.
 *                 `41` from the server is a deliberate disconnect: we do not reconnect after it.
 *     Requests    `io.socket.post('/x', {a:1}, cb)` is the event
 *                 `42<id>["post",{"method":"post","headers":{},"data":{"a":1},"url":"/x"}]`
 *                 and the server acks with one JWR: `43<id>[{"body":...,"headers":{},"statusCode":200}]`.
 *
 * WHAT IS THE SAME AS sails.io.js 1.2.1
 *   `io.sails` options and script-tag attributes, the auto-connecting `io.socket`, `io.sails.connect()`,
 *   get/post/put/patch/delete/request with `cb(body, jwr)`, the JWR and its error messages, queueing of
 *   requests made before the socket connects, the error given to callbacks of requests cut off by a
 *   disconnect, on/off/removeAllListeners, isConnected/isConnecting/mightBeAboutToAutoConnect,
 *   disconnect/reconnect, and the client-side validation of request options.
 *
 * WHAT IS DIFFERENT
 *   1. Engine.IO 4 / Socket.IO 5 instead of the Engine.IO 3 / Socket.IO 4 of socket.io-client 2.0.3.
 *   2. A request made without a callback returns a Promise: it resolves with the body on success and
 *      rejects with `jwr.error` (which carries the JWR as `.jwr`) when the status is an error. A promise
 *      nobody looks at never reports an "unhandled rejection", so fire-and-forget calls written for
 *      Sails stay quiet. (sails.io.js sends such requests without an ack id; we always ask for one.)
 *   3. Reconnection is ON by default: exponential backoff from 1 s, doubling, with ±50% jitter, capped
 *      at 10 s. `io.sails.reconnection = false` turns it off.
 *   4. Subscriptions survive reconnects. The trisails server marks the response of any request that
 *      changed the socket's rooms (joined or left one) with the header `x-trisails-rejoin: 1` (only for
 *      clients that sent `__trisails_client=1`). We remember those requests (method, url, data,
 *      headers; a repeated request moves to the end) and send them again, in order, after every
 *      reconnection, before the requests that were queued meanwhile, so room memberships and model
 *      subscriptions come back by themselves, and rooms left stay left.
 *   5. A `SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ` ack is an error JWR (status 400), not a silent 200.
 *   6. `reconnect` is emitted after `connect` once an automatic reconnection succeeds (socket.io-client
 *      2 emits it before), so its listeners can use the socket straight away.
 *   7. `io.socket` connects one tick after the script runs, but never before the page has been parsed
 *      (DOMContentLoaded), so an inline script after our <script> tag always gets to set `io.sails`.
 *   8. `initialConnectionHeaders` cannot work in a browser websocket: it is ignored, with a warning.
 *      `url` only contributes its origin (scheme, host, port); there are no namespaces.
 *   9. Presence (a trisails server's `presence_state` / `presence_diff` events): `io.socket.presence(room)`
 *      keeps a room's presence in sync, one entry per key with its metas, and calls `onJoin`, `onLeave`
 *      and `onSync` callbacks. Sails has no presence.
 *  10. Connection state recovery (a trisails server with `sockets.recovery`, as Socket.IO 4.6+ does it):
 *      the server's CONNECT answer carries a private session id (`40{"sid","pid"}`) and each broadcast
 *      an offset as its last argument; we keep both (the offset is taken off the arguments listeners
 *      get, recognised by its shape) and reconnect with `40{"pid","offset"}`. When the server recovers
 *      the socket (same id, same rooms), nothing is repeated and the broadcasts missed meanwhile reach
 *      the listeners after `connect`; `reconnect` gets `(attempts, {recovered: true})` and
 *      `io.socket.recovered` is true. Otherwise `reconnect` gets `{recovered: false}`, the requests
 *      that joined rooms are repeated, and each one's fresh answer is emitted as
 *      `rejoin(body, jwr, {method, url, data})`, so the page can refresh what it shows.
 */
(function (root) {
  'use strict';

  // ------------------------------------------------------------------------------------ constants

  const SDK_INFO = { version: '1.2.1', language: 'javascript', platform: 'browser' };
  SDK_INFO.versionString =
    '__sails_io_sdk_version=' + SDK_INFO.version +
    '&__sails_io_sdk_platform=' + SDK_INFO.platform +
    '&__sails_io_sdk_language=' + SDK_INFO.language;

  // The shapes of a trisails server's recovery offsets (see trisails.protocol.socketio_connection.OFFSET).
  const OFFSET = /^(?:[A-Za-z0-9_-]{20}-[0-9]{1,18}|[0-9]{1,15}-[0-9]{1,18}-[A-Za-z0-9_-]{20})$/;
  const CLIENT_MARKER = '__trisails_client=1';   // tells the server it may send x-trisails-rejoin
  const REJOIN_HEADER = 'x-trisails-rejoin';
  const PARSE_ERROR_CODE = 'SAILS:HOOK:SOCKETS:PARSE_VIRTUAL_REQ';
  const DISCONNECTED_MESSAGE = 'The socket disconnected before the request completed.';

  // Options a SailsSocket takes from `io.sails` when it was not given them itself.
  const SOCKET_OPTIONS = [
    'url', 'path', 'query', 'headers', 'transports', 'timeout', 'useCORSRouteToGetCookie',
    'initialConnectionHeaders', 'reconnection', 'reconnectionAttempts', 'reconnectionDelay',
    'reconnectionDelayMax', 'randomizationFactor',
  ];
  // `io.sails` options that may also be given as attributes of the <script> tag.
  const SCRIPT_TAG_OPTIONS = ['autoConnect', 'reconnection', 'environment', 'headers', 'url', 'transports', 'path'];

  // Socket.IO packet types.
  const CONNECT = 0, DISCONNECT = 1, EVENT = 2, ACK = 3, CONNECT_ERROR = 4, BINARY_EVENT = 5, BINARY_ACK = 6;

  // ------------------------------------------------------------------------------------ helpers

  function log() {
    if (root.io && root.io.sails && root.io.sails.environment === 'production') { return; }
    console.log.apply(console, ['sails.io.js:'].concat(Array.from(arguments)));
  }

  // Run someone else's function; if it throws, report the error without breaking our own bookkeeping.
  function callSafely(fn, args) {
    try { fn.apply(null, args); } catch (err) { setTimeout(function () { throw err; }); }
  }

  function isBinary(value) {
    return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
  }

  function isDictionary(value) {
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  }

  // A deep copy, so that the caller changing an object later does not change what we remember.
  function clone(value) {
    try { return structuredClone(value); } catch (uncloneable) { return value; }
  }

  function toBase64(data) {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let text = '';
    for (let i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text);
  }

  function fromBase64(text) {
    const chars = atob(text);
    const bytes = new Uint8Array(chars.length);
    for (let i = 0; i < chars.length; i++) { bytes[i] = chars.charCodeAt(i); }
    return bytes.buffer;
  }

  // Resolve the `url` option into an origin such as "https://example.com:1337" (default: this page's).
  function originOf(url) {
    if (!url) { return root.location.protocol + '//' + root.location.host; }
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && url.charAt(0) !== '/') {
      url = root.location.protocol + '//' + url;   // "localhost:1337" means this page's scheme
    }
    return new URL(url, root.location.href).origin;
  }

  // A minimal event emitter: listeners run in the order they were added.
  class Emitter {
    constructor() { this._listeners = {}; }
    on(name, fn) { (this._listeners[name] = this._listeners[name] || []).push(fn); }
    off(name, fn) {
      const list = this._listeners[name];
      if (!list) { return; }
      if (fn === undefined) { delete this._listeners[name]; return; }
      const index = list.indexOf(fn);
      if (index >= 0) { list.splice(index, 1); }
    }
    removeAll() { this._listeners = {}; }
    emit(name, args) {
      for (const fn of (this._listeners[name] || []).slice()) { callSafely(fn, args); }
    }
  }

  // ------------------------------------------------------------------------------------ Socket.IO codec

  // Replace every ArrayBuffer or typed array in `value` by a placeholder, collecting the buffers in order.
  function extractBinaries(value, buffers) {
    if (isBinary(value)) {
      buffers.push(value);
      return { _placeholder: true, num: buffers.length - 1 };
    }
    if (Array.isArray(value)) { return value.map(function (item) { return extractBinaries(item, buffers); }); }
    if (value !== null && typeof value === 'object' && typeof value.toJSON !== 'function') {
      const copy = {};
      for (const key of Object.keys(value)) { copy[key] = extractBinaries(value[key], buffers); }
      return copy;
    }
    return value;
  }

  // The reverse: put the received buffers back where their placeholders are.
  function insertBinaries(value, buffers) {
    if (Array.isArray(value)) { return value.map(function (item) { return insertBinaries(item, buffers); }); }
    if (value !== null && typeof value === 'object') {
      if (value._placeholder === true && typeof value.num === 'number') { return buffers[value.num]; }
      for (const key of Object.keys(value)) { value[key] = insertBinaries(value[key], buffers); }
    }
    return value;
  }

  // Encode a packet for namespace "/" as its text part plus its binary attachments.
  function encodePacket(type, data, id) {
    const attachments = [];
    const payload = data === undefined ? undefined : extractBinaries(data, attachments);
    if (attachments.length && type === EVENT) { type = BINARY_EVENT; }
    if (attachments.length && type === ACK) { type = BINARY_ACK; }
    let text = String(type);
    if (attachments.length) { text += attachments.length + '-'; }
    if (id !== undefined) { text += id; }
    if (payload !== undefined) { text += JSON.stringify(payload); }
    return [text].concat(attachments);
  }

  // Parse the text of a packet: `<type>[<attachments>-][/<nsp>,][<id>][<json>]`.
  function parsePacket(text) {
    const type = Number(text.charAt(0));
    if (!/^[0-6]$/.test(text.charAt(0))) { throw new Error('unknown Socket.IO packet type'); }
    let rest = text.slice(1);
    let attachments = 0, nsp = '/', id;
    if (type === BINARY_EVENT || type === BINARY_ACK) {
      const dash = rest.indexOf('-');
      attachments = Number(rest.slice(0, dash));
      if (dash < 1 || !(attachments >= 0)) { throw new Error('bad attachment count'); }
      rest = rest.slice(dash + 1);
    }
    if (rest.charAt(0) === '/') {
      const comma = rest.indexOf(',');
      nsp = comma < 0 ? rest : rest.slice(0, comma);
      rest = comma < 0 ? '' : rest.slice(comma + 1);
    }
    const digits = /^\d*/.exec(rest)[0];
    if (digits) { id = Number(digits); rest = rest.slice(digits.length); }
    const data = rest ? JSON.parse(rest) : undefined;
    return { type: type, nsp: nsp, id: id, data: data, attachments: attachments };
  }

  // ------------------------------------------------------------------------------------ Engine.IO transports
  //
  // A transport moves raw Engine.IO packets: a string is a text packet (type digit first), an
  // ArrayBuffer a binary message. It calls `onpacket(packet)` for each one it receives and
  // `onclose(reason)` once, when it breaks. `close()` (our own decision) calls nothing back.

  class WebSocketTransport {
    constructor(url, onpacket, onclose) {
      this.name = 'websocket';
      this.ws = new WebSocket(url.replace(/^http/, 'ws') + '&EIO=4&transport=websocket');
      this.ws.binaryType = 'arraybuffer';
      this.ws.onmessage = function (event) { onpacket(event.data); };
      this.ws.onerror = () => this._broken(onclose, 'transport error');
      this.ws.onclose = () => this._broken(onclose, 'transport close');
    }
    _broken(onclose, reason) {
      if (this.closed) { return; }
      this.close();
      onclose(reason);
    }
    send(packets) {
      for (const packet of packets) { this.ws.send(packet); }
    }
    close() {
      this.closed = true;
      this.ws.onmessage = this.ws.onerror = this.ws.onclose = null;
      this.ws.close();
    }
  }

  // HTTP long-polling (Engine.IO 4): a GET waits for packets, a POST sends them. In both directions the
  // packets of one body are joined by the record separator \x1e, and a binary one is "b" + base64.
  class PollingTransport {
    constructor(url, onpacket, onclose) {
      this.name = 'polling';
      this.url = url + '&EIO=4&transport=polling';
      this.onpacket = onpacket;
      this.onclose = onclose;
      this.sid = null;
      this.outbox = [];          // packets waiting for the POST in flight to finish
      this.posting = false;
      this.requests = 0;         // for a cache-busting parameter, as engine.io-client adds one
      this.aborter = new AbortController();
      this._poll();
    }
    _fetch(method, body) {
      let url = this.url + '&t=' + Date.now().toString(36) + '.' + (this.requests++);
      if (this.sid) { url += '&sid=' + encodeURIComponent(this.sid); }
      const init = { method: method, cache: 'no-store', signal: this.aborter.signal };
      if (body !== undefined) { init.body = body; init.headers = { 'Content-Type': 'text/plain;charset=UTF-8' }; }
      return fetch(url, init).then(function (response) {
        if (!response.ok) { throw new Error('HTTP ' + response.status); }
        return response.text();
      });
    }
    async _poll() {
      while (!this.closed) {
        let body;
        try { body = await this._fetch('GET'); } catch (err) { return this._broken('transport error'); }
        for (const item of body.split('\x1e')) {
          if (this.closed) { return; }
          if (item.charAt(0) === '0' && !this.sid) { this.sid = JSON.parse(item.slice(1)).sid; }
          this.onpacket(item.charAt(0) === 'b' ? fromBase64(item.slice(1)) : item);
        }
      }
    }
    send(packets) {
      for (const packet of packets) { this.outbox.push(typeof packet === 'string' ? packet : 'b' + toBase64(packet)); }
      this._flush();
    }
    _flush() {
      if (this.posting || this.closed || !this.outbox.length) { return; }
      const body = this.outbox.join('\x1e');
      this.outbox = [];
      this.posting = true;
      this._fetch('POST', body).then(() => { this.posting = false; this._flush(); },
        () => this._broken('transport error'));
    }
    _broken(reason) {
      if (this.closed) { return; }
      this.close();
      this.onclose(reason);
    }
    close() {
      if (this.closed) { return; }
      if (this.sid) {   // say goodbye (Engine.IO close packet), after whatever is still waiting to go
        const body = this.outbox.concat(['1']).join('\x1e');
        fetch(this.url + '&sid=' + encodeURIComponent(this.sid), { method: 'POST', body: body }).catch(function () {});
      }
      this.closed = true;
      this.aborter.abort();
    }
  }

  // ------------------------------------------------------------------------------------ Engine.IO session

  // One Engine.IO session: picks a transport (websocket first, polling as the fallback), answers the
  // server's pings, and declares the connection dead after pingInterval+pingTimeout of silence.
  // Calls onopen(), onmessage(textOrArrayBuffer) and, once, onclose(reason).
  class Engine {
    constructor(url, transports, handlers) {
      this.url = url;
      this.handlers = handlers;
      this.candidates = ['websocket', 'polling'].filter(function (name) { return transports.indexOf(name) >= 0; });
      this.opened = false;
      this.closed = false;
      this._next();
    }
    _next() {
      const name = this.candidates.shift();
      const Transport = name === 'websocket' ? WebSocketTransport : PollingTransport;
      this.transport = new Transport(this.url, (packet) => this._onPacket(packet), (reason) => {
        if (!this.opened && this.candidates.length) { return this._next(); }   // fall back to polling
        this._close(reason);
      });
    }
    _onPacket(packet) {
      if (this.closed) { return; }
      if (this.opened) { this._watchHeartbeat(); }
      if (typeof packet !== 'string') { return this.handlers.onmessage(packet); }   // a binary attachment
      switch (packet.charAt(0)) {
        case '0':   // open: {"sid","upgrades","pingInterval","pingTimeout","maxPayload"}
          this.handshake = JSON.parse(packet.slice(1));
          this.opened = true;
          this._watchHeartbeat();
          return this.handlers.onopen();
        case '1': return this._close('transport close');      // the server closed the session
        case '2': return this.transport.send(['3']);         // ping: answer pong
        case '4': return this.handlers.onmessage(packet.slice(1));
        case '6': return;                                    // noop
        default: return this._close('parse error');
      }
    }
    _watchHeartbeat() {
      clearTimeout(this.heartbeat);
      const limit = this.handshake.pingInterval + this.handshake.pingTimeout;
      this.heartbeat = setTimeout(() => this._close('ping timeout'), limit);
    }
    // Send Socket.IO packets: text parts go as Engine.IO "4" messages, binary parts as they are.
    send(parts) {
      if (this.closed) { return; }
      this.transport.send(parts.map(function (part) { return typeof part === 'string' ? '4' + part : part; }));
    }
    close() {   // our own decision: no onclose callback
      this.closed = true;
      clearTimeout(this.heartbeat);
      this.transport.close();
    }
    _close(reason) {
      if (this.closed) { return; }
      this.close();
      this.handlers.onclose(reason);
    }
  }

  // ------------------------------------------------------------------------------------ JWR

  // The JSON WebSocket Response given to request callbacks: body, headers, statusCode and, for an
  // error status (below 200 or from 400 up), an `error`.
  class JWR {
    constructor(ack) {
      const ctx = isDictionary(ack) ? ack : { body: ack };
      if (ctx.code === PARSE_ERROR_CODE && ctx.statusCode === undefined) {
        // The server could not read our request at all; sails.io.js would report a 200 here.
        this.body = ctx;
        this.headers = {};
        this.statusCode = typeof ctx.status === 'number' ? ctx.status : 400;
        this.error = new Error((ctx.message || 'The server could not parse the request.') +
          (ctx.details ? '\n' + ctx.details : ''));
        this.error.code = ctx.code;
        return;
      }
      this.body = ctx.body;
      this.headers = ctx.headers || {};
      this.statusCode = ctx.statusCode === undefined ? 200 : ctx.statusCode;
      if (this.statusCode < 200 || this.statusCode >= 400) {
        this.error = new Error(this.statusCode === 0 ? 'The socket request failed.'
          : 'Server responded with a ' + this.statusCode + ' status code:\n```\n' +
            JSON.stringify(this.body, null, 2) + '\n```');
      }
    }
    toPOJO() {
      return { body: this.body, headers: this.headers, statusCode: this.statusCode };
    }
    toString() {
      return '[ResponseFromSails] -- Status: ' + this.statusCode + ' -- Headers: ' +
        JSON.stringify(this.headers) + ' -- Body: ' + JSON.stringify(this.body);
    }
  }

  function rejoinHeaderIn(headers) {
    for (const name of Object.keys(headers || {})) {
      if (name.toLowerCase() === REJOIN_HEADER) { return String(headers[name]) === '1' || headers[name] === true; }
    }
    return false;
  }

  // ------------------------------------------------------------------------------------ Presence

  // The presence of one room, kept in sync from the server's `presence_state` (the whole room) and
  // `presence_diff` (metas that joined and left) events, which the SailsSocket hands to the Presence of
  // their room (made on the first event, so a page may ask for it after the request that tracked it). State: key -> its metas, each meta told apart by
  // its `ref`, so applying a join already held or a leave already gone changes nothing. Diffs that come
  // before the first state, or after a disconnect and before the state the server sends again once the
  // socket is tracked again, wait and are applied on top of that state.
  const MAX_PENDING_DIFFS = 1000;

  function metasByKey(value) {
    const found = new Map();
    if (!isDictionary(value)) { return found; }
    for (const key of Object.keys(value)) {
      const entry = value[key];
      if (isDictionary(entry) && Array.isArray(entry.metas)) {
        found.set(key, entry.metas.filter(isDictionary));
      }
    }
    return found;
  }
  function refsOf(metas) { return new Set(metas.map(function (meta) { return meta.ref; })); }

  class Presence {
    constructor(room) {
      this.room = room;
      this.synced = false;
      this._state = new Map();
      this._pending = [];
      this._callbacks = { join: [], leave: [], sync: [] };
    }

    // fn(key, current, joined): metas `joined` arrived under `key`, which held `current` before ([] if new).
    onJoin(fn) { this._callbacks.join.push(fn); return this; }
    // fn(key, remaining, left): metas `left` went; `remaining` is what `key` still holds ([] when gone).
    onLeave(fn) { this._callbacks.leave.push(fn); return this; }
    // fn(presence): after every state or diff applied.
    onSync(fn) { this._callbacks.sync.push(fn); return this; }

    // [{key, metas}, ...] in the order keys came.
    list() {
      const entries = [];
      this._state.forEach(function (metas, key) { entries.push({ key: key, metas: metas.slice() }); });
      return entries;
    }
    get state() {
      const state = {};
      this._state.forEach(function (metas, key) { state[key] = metas.slice(); });
      return state;
    }

    _call(name, args) {
      for (const fn of this._callbacks[name].slice()) { callSafely(fn, args); }
    }

    _onState(payload) {
      if (!isDictionary(payload) || payload.room !== this.room) { return; }
      const incoming = metasByKey(payload.state);
      const before = this._state;
      this._state = incoming;
      this.synced = true;
      incoming.forEach((metas, key) => {
        const held = before.get(key) || [];
        const known = refsOf(held);
        const joined = metas.filter(function (meta) { return !known.has(meta.ref); });
        if (joined.length) { this._call('join', [key, held.slice(), joined]); }
      });
      before.forEach((metas, key) => {
        const kept = refsOf(incoming.get(key) || []);
        const left = metas.filter(function (meta) { return !kept.has(meta.ref); });
        if (left.length) { this._call('leave', [key, (incoming.get(key) || []).slice(), left]); }
      });
      const pending = this._pending;
      this._pending = [];
      pending.forEach((diff) => this._apply(diff));
      this._call('sync', [this]);
    }

    _onDiff(payload) {
      if (!isDictionary(payload) || payload.room !== this.room) { return; }
      if (!this.synced) {
        this._pending.push(payload);
        if (this._pending.length > MAX_PENDING_DIFFS) { this._pending.shift(); }
        return;
      }
      this._apply(payload);
      this._call('sync', [this]);
    }

    _apply(diff) {
      metasByKey(diff.joins).forEach((metas, key) => {
        const held = this._state.get(key) || [];
        const known = refsOf(held);
        const joined = metas.filter(function (meta) { return !known.has(meta.ref); });
        if (!joined.length) { return; }
        this._state.set(key, held.concat(joined));
        this._call('join', [key, held.slice(), joined]);
      });
      metasByKey(diff.leaves).forEach((metas, key) => {
        const held = this._state.get(key);
        if (!held) { return; }
        const going = refsOf(metas);
        const left = held.filter(function (meta) { return going.has(meta.ref); });
        if (!left.length) { return; }
        const remaining = held.filter(function (meta) { return !going.has(meta.ref); });
        if (remaining.length) { this._state.set(key, remaining); } else { this._state.delete(key); }
        this._call('leave', [key, remaining.slice(), left]);
      });
    }
  }

  // ------------------------------------------------------------------------------------ SailsSocket

  // One connection to the server. States: 'idle' (not connected, nothing planned), 'connecting',
  // 'connected', and 'waiting' (a reconnection attempt is scheduled).
  class SailsSocket {
    constructor(options) {
      options = options || {};
      for (const name of SOCKET_OPTIONS) { this[name] = options[name]; }
      this._events = new Emitter();
      this._state = 'idle';
      this._mightBeAboutToAutoConnect = false;
      this._engine = null;
      this._nextAckId = 0;         // never reset, as in socket.io-client
      this._inFlight = new Map();  // ack id -> request waiting for its response
      this._queue = [];            // requests made while not connected, sent in order on connect
      this._rejoin = [];           // requests that changed rooms: repeated, in order, after each reconnection
      this._connections = 0;       // successful connections so far
      this._attempts = 0;          // reconnection attempts since the connection was lost
      this._cookieChecked = false;
      this._pid = null;            // recovery: the server's private session id for our socket
      this._lastOffset = undefined; // recovery: the offset of the last broadcast we heard
      this._early = [];            // events that came before the CONNECT answer (a recovery's missed broadcasts)
      this.recovered = false;      // whether the last (re)connection recovered our server-side socket
      this.on('sails:parseError', function (err) { log('the server could not parse a request:', err); });
      this._presences = new Map();  // room -> Presence
      this._listenForPresence();
    }

    // -------------------------------------------------------------------------- connecting

    _connect() {
      for (const name of SOCKET_OPTIONS) {
        if (this[name] === undefined && name !== 'headers') { this[name] = io.sails[name]; }
      }
      if (this.query !== undefined && this.query !== null && typeof this.query !== 'string') {
        throw new Error('sails.io.js: `query` must be a string such as "a=1&b=2"');
      }
      if (!Array.isArray(this.transports) || !this.transports.some(function (t) { return t === 'websocket' || t === 'polling'; })) {
        throw new Error('sails.io.js: `transports` must list "websocket" and/or "polling"');
      }
      if (this.initialConnectionHeaders) {
        console.warn('sails.io.js: `initialConnectionHeaders` cannot be sent by a browser and is ignored; ' +
          'use `headers` (sent with every request) or `query` instead.');
      }
      this._state = 'connecting';
      this._getCookieIfCrossOrigin(() => this._open());
    }

    // The Engine.IO URL without its EIO/transport parameters, which the transport adds.
    _endpoint() {
      let path = this.path || '/socket.io';
      if (path.charAt(0) !== '/') { path = '/' + path; }
      if (path.charAt(path.length - 1) !== '/') { path += '/'; }
      let query = SDK_INFO.versionString + '&' + CLIENT_MARKER;
      if (this.query) { query += '&' + this.query.replace(/^\?/, ''); }
      return originOf(this.url) + path + '?' + query;
    }

    // A page talking to another origin first loads <origin>/__getcookie as a script, so the server can
    // set its session cookie (as sails.io.js does). We go on when it has loaded or failed to.
    _getCookieIfCrossOrigin(next) {
      const target = originOf(this.url);
      if (this._cookieChecked || !this.useCORSRouteToGetCookie || target === root.location.origin) { return next(); }
      this._cookieChecked = true;
      if (typeof root._sailsIoJSConnect !== 'function') { root._sailsIoJSConnect = function () {}; }
      const script = document.createElement('script');
      script.src = target + (typeof this.useCORSRouteToGetCookie === 'string' ? this.useCORSRouteToGetCookie : '/__getcookie');
      script.onload = script.onerror = function () { script.remove(); next(); };
      document.head.appendChild(script);
    }

    _open() {
      if (this._state !== 'connecting') { return; }   // disconnect() was called meanwhile
      let pending = null;   // a binary packet waiting for its attachments
      const engine = this._engine = new Engine(this._endpoint(), this.transports, {
        onopen: () => engine.send(['0' + this._recoveryPayload()]),   // Socket.IO CONNECT to namespace "/"
        onmessage: (data) => {
          try {
            if (typeof data !== 'string') {
              if (!pending) { throw new Error('unexpected binary message'); }
              pending.buffers.push(data);
            } else {
              if (pending) { throw new Error('missing binary attachments'); }
              pending = parsePacket(data);
              pending.buffers = [];
            }
            if (pending.buffers.length === pending.attachments) {
              const packet = pending;
              pending = null;
              packet.data = insertBinaries(packet.data, packet.buffers);
              this._onPacket(packet);
            }
          } catch (err) {
            log('closing the connection, bad packet from the server:', err.message);
            this._lost('parse error', true);
          }
        },
        onclose: (reason) => this._lost(reason, true),
      });
      clearTimeout(this._connectTimer);
      if (this.timeout > 0) {
        this._connectTimer = setTimeout(() => this._lost('timeout', true), this.timeout);
      }
    }

    _onPacket(packet) {
      if (packet.nsp !== '/') { return; }
      switch (packet.type) {
        case CONNECT: return this._state === 'connecting' ? this._onConnect(packet.data) : undefined;
        case CONNECT_ERROR: {
          // The server refused us (its connection middleware said no): report it, do not retry.
          const data = packet.data;
          const error = new Error(isDictionary(data) ? data.message : String(data));
          if (isDictionary(data) && data.data !== undefined) { error.data = data.data; }
          this._lost('connect error', false);
          return this._events.emit('error', [error]);
        }
        case EVENT: case BINARY_EVENT: {
          if (this._state === 'connecting') { this._early.push(packet); return; }   // delivered after connect
          const args = packet.data.slice(1);
          const last = args[args.length - 1];
          if (this._pid && typeof last === 'string' && OFFSET.test(last)) { this._lastOffset = args.pop(); }
          if (packet.id !== undefined) {   // the server wants an acknowledgement: give listeners a function
            let acked = false;
            args.push((...ackArgs) => {
              if (!acked && this._state === 'connected') { acked = true; this._sendPacket(ACK, ackArgs, packet.id); }
            });
          }
          return this._events.emit(String(packet.data[0]), args);
        }
        case ACK: case BINARY_ACK: {
          const request = this._inFlight.get(packet.id);
          if (!request) { return; }   // a late answer to a request already failed by a disconnect
          this._inFlight.delete(packet.id);
          return request.respond(new JWR(packet.data[0]));
        }
        case DISCONNECT: return this._lost('io server disconnect', false);   // deliberate: no reconnection
      }
    }

    // The CONNECT payload: asking to recover our previous socket, when the server gave us a pid.
    _recoveryPayload() {
      if (!this._pid) { return ''; }
      return JSON.stringify(this._lastOffset === undefined ? { pid: this._pid } : { pid: this._pid, offset: this._lastOffset });
    }

    _onConnect(data) {
      clearTimeout(this._connectTimer);
      const pid = isDictionary(data) && typeof data.pid === 'string' ? data.pid : null;
      this.recovered = pid !== null && pid === this._pid;
      this._pid = pid;
      if (!this.recovered) { this._lastOffset = undefined; }
      const attempts = this._attempts;   // > 0 when this is an automatic reconnection
      this._attempts = 0;
      this._state = 'connected';
      log('connected to', originOf(this.url), 'over', this._engine.transport.name);
      // A new server-side socket is in no room: first repeat the requests that had joined rooms,
      // then send what was queued while we were away. A recovered socket is still in its rooms.
      if (this._connections++ > 0 && !this.recovered) {
        for (const entry of this._rejoin.slice()) { this._send(this._replay(entry)); }
      }
      const queued = this._queue;
      this._queue = [];
      for (const request of queued) { this._send(request); }
      this._events.emit('connect', []);
      if (attempts > 0) { this._events.emit('reconnect', [attempts, { recovered: this.recovered }]); }
      const early = this._early;
      this._early = [];
      for (const packet of early) { this._onPacket(packet); }
    }

    // The connection ended (or an attempt failed). `mayReconnect` is false for deliberate ends.
    _lost(reason, mayReconnect) {
      const wasConnected = this._state === 'connected';
      clearTimeout(this._connectTimer);
      if (this._engine) { this._engine.close(); this._engine = null; }
      this._state = 'idle';
      this._early = [];
      if (wasConnected) {
        // Requests that were waiting for a response will never get one.
        const inFlight = Array.from(this._inFlight.values());
        this._inFlight.clear();
        for (const request of inFlight) { request.fail(); }
        log('disconnected:', reason);
        this._events.emit('disconnect', [reason]);
      } else if (reason !== 'connect error' && reason !== 'io client disconnect') {
        this._events.emit('error', [new Error('Could not connect to ' + originOf(this.url) + ' (' + reason + ')')]);
      }
      if (mayReconnect && this._state === 'idle') { this._scheduleReconnect(); }
    }

    _scheduleReconnect() {
      if (!this.reconnection) { return; }
      if (this._attempts >= this.reconnectionAttempts) { return this._events.emit('reconnect_failed', []); }
      // Exponential backoff with jitter: delay * 2^attempts, randomised by ±randomizationFactor, capped.
      const base = this.reconnectionDelay * Math.pow(2, this._attempts);
      const jitter = 1 + this.randomizationFactor * (2 * Math.random() - 1);
      const delay = Math.min(base * jitter, this.reconnectionDelayMax);
      this._attempts++;
      this._state = 'waiting';
      this._reconnectTimer = setTimeout(() => {
        this._state = 'connecting';
        log('reconnecting, attempt', this._attempts);
        this._events.emit('reconnecting', [this._attempts]);
        this._open();
      }, delay);
    }

    // -------------------------------------------------------------------------- requests

    // Send a request (see `request()` for its shape) and keep it until its response arrives.
    _send(request) {
      const headers = Object.assign({}, request.headers);
      const defaults = this.headers !== undefined ? this.headers : io.sails.headers;
      for (const name of Object.keys(isDictionary(defaults) ? defaults : {})) {
        if (!Object.prototype.hasOwnProperty.call(headers, name)) { headers[name] = defaults[name]; }
      }
      const id = this._nextAckId++;
      this._inFlight.set(id, request);
      this._sendPacket(EVENT, [request.method, { method: request.method, headers: headers, data: request.data, url: request.url }], id);
    }

    _sendPacket(type, data, id) {
      this._engine.send(encodePacket(type, data, id));
    }

    // Remember a request whose response said it changed the socket's rooms. A request seen before moves
    // to the end: replaying "join a, leave a, join a" as "leave a, join a" ends in the same rooms.
    _remember(request) {
      const key = JSON.stringify([request.method, request.url, request.data, request.headers]);
      this._rejoin = this._rejoin.filter(function (entry) { return entry.key !== key; });
      this._rejoin.push({
        key: key,
        method: request.method,
        url: request.url,
        data: clone(request.data),
        headers: clone(request.headers),
      });
    }

    // The request that repeats a remembered one after a reconnection. If the server answers without
    // the rejoin header this time, the request no longer joins anything and is forgotten.
    _replay(entry) {
      return {
        method: entry.method, url: entry.url, data: entry.data, headers: entry.headers,
        respond: (jwr) => {
          const index = this._rejoin.indexOf(entry);
          if (!rejoinHeaderIn(jwr.headers) && index >= 0) { this._rejoin.splice(index, 1); }
          this._events.emit('rejoin', [jwr.body, jwr, { method: entry.method, url: entry.url, data: clone(entry.data) }]);
        },
        fail: function () {},
      };
    }

    /**
     * Send a virtual request. `options`: {method ('get'), url, data or params, headers}.
     * With a callback `cb(body, jwr)` it returns nothing; without one it returns a Promise of the body.
     */
    request(options, cb) {
      const usage = '\nUsage: socket.request({method, url, data, headers}, [callback])';
      if (cb !== undefined && typeof cb !== 'function') { throw new Error('Invalid callback function!' + usage); }
      if (!options || typeof options !== 'object' || typeof options.url !== 'string') {
        throw new Error('Invalid or missing URL!' + usage);
      }
      if (options.method && typeof options.method !== 'string') { throw new Error('Invalid `method`: it must be a string such as "post".' + usage); }
      if (options.headers && typeof options.headers !== 'object') { throw new Error('Invalid `headers`: they must be a dictionary.' + usage); }
      if (options.params && typeof options.params !== 'object') { throw new Error('Invalid `params`: they must be a dictionary.' + usage); }
      if (options.data && typeof options.data !== 'object') { throw new Error('Invalid `data`: it must be a dictionary.' + usage); }
      if (options.data && options.params) { throw new Error('Cannot give both `params` and `data`: they are aliases.' + usage); }

      // How the caller hears the outcome, exactly once: `answer(jwr)` for a response, `lose()` when
      // the connection ends first. A callback gets (body, jwr) or (Error, {body: null, statusCode: 0,
      // headers: {}}); a promise resolves with the body or rejects with an Error carrying `.jwr`.
      let promise, answer, lose;
      if (cb !== undefined) {
        answer = function (jwr) { callSafely(cb, [jwr.body, jwr]); };
        lose = function (error) { callSafely(cb, [error, error.jwr]); };
      } else {
        promise = new Promise(function (resolve, reject) {
          answer = function (jwr) {
            if (!jwr.error) { return resolve(jwr.body); }
            jwr.error.jwr = jwr;
            reject(jwr.error);
          };
          lose = reject;
        });
        promise.catch(function () {});   // a promise nobody looks at must not report an unhandled rejection
      }

      let answered = false;
      const request = {
        method: (options.method || 'get').toLowerCase(),
        url: options.url,
        data: options.params || options.data || {},
        headers: options.headers || {},
        respond: (jwr) => {
          if (answered) { return; }
          answered = true;
          if (!jwr.error && rejoinHeaderIn(jwr.headers)) { this._remember(request); }
          answer(jwr);
        },
        fail: function () {
          if (answered) { return; }
          answered = true;
          const error = new Error(DISCONNECTED_MESSAGE);
          error.jwr = { body: null, statusCode: 0, headers: {} };
          lose(error);
        },
      };
      if (this._state === 'connected') { this._send(request); } else { this._queue.push(request); }
      return promise;
    }

    get(url, data, cb) { return this._verb('get', url, data, cb); }
    post(url, data, cb) { return this._verb('post', url, data, cb); }
    put(url, data, cb) { return this._verb('put', url, data, cb); }
    patch(url, data, cb) { return this._verb('patch', url, data, cb); }
    delete(url, data, cb) { return this._verb('delete', url, data, cb); }

    _verb(method, url, data, cb) {
      if (typeof data === 'function') { cb = data; data = {}; }
      return this.request({ method: method, url: url, params: data }, cb);
    }

    // -------------------------------------------------------------------------- events

    // The synced presence of `room`, one per room and socket. The socket keeps the presence of every room
    // the server sends presence events for, so this may be called before or after the request that
    // tracked or subscribed the socket.
    presence(room) {
      if (typeof room !== 'string') { throw new Error('sails.io.js: presence(room) takes the room name, a string'); }
      if (!this._presences.has(room)) { this._presences.set(room, new Presence(room)); }
      return this._presences.get(room);
    }

    _listenForPresence() {
      this.on('presence_state', (payload) => {
        if (isDictionary(payload) && typeof payload.room === 'string') { this.presence(payload.room)._onState(payload); }
      });
      this.on('presence_diff', (payload) => {
        if (isDictionary(payload) && typeof payload.room === 'string') { this.presence(payload.room)._onDiff(payload); }
      });
      // after a disconnect, diffs wait for the state the server sends once the socket is tracked again
      this.on('disconnect', () => { this._presences.forEach(function (presence) { presence.synced = false; }); });
    }

    on(name, fn) { this._events.on(name, fn); return this; }
    off(name, fn) { this._events.off(name, fn); return this; }
    removeAllListeners() { this._events.removeAll(); this._listenForPresence(); return this; }

    // -------------------------------------------------------------------------- connection control

    isConnected() { return this._state === 'connected'; }

    // A raw Socket.IO event, for what is not a request: game input, typing indicators. Fire and forget:
    // it is dropped (and false returned) while the socket is not connected. sails.io.js users reach
    // for `io.socket._raw.emit` for the same thing.
    emit(event, ...args) {
      if (!this.isConnected()) { return false; }
      this._sendPacket(EVENT, [String(event)].concat(args));
      return true;
    }
    isConnecting() { return this._state === 'connecting' || this._state === 'waiting'; }
    mightBeAboutToAutoConnect() { return this._mightBeAboutToAutoConnect; }

    // Leave the server (it sees "client namespace disconnect") and stay away: no reconnection.
    // Also stops a connection attempt or a scheduled reconnection.
    disconnect() {
      clearTimeout(this._reconnectTimer);
      if (this._state === 'connected') { this._sendPacket(DISCONNECT); }
      else if (this._state === 'idle') { throw new Error('Cannot disconnect: the socket is already disconnected.'); }
      this._lost('io client disconnect', false);
    }

    // Connect again after a disconnect (or right now, instead of waiting for the next scheduled attempt).
    reconnect() {
      if (this._state === 'connected') { throw new Error('Cannot connect: the socket is already connected.'); }
      if (this._state === 'connecting') { throw new Error('Cannot connect: the socket is already connecting.'); }
      clearTimeout(this._reconnectTimer);
      this._attempts = 0;
      this._connect();
    }
  }

  // ------------------------------------------------------------------------------------ io.sails and io.socket

  // Keep an existing global `io` (a socket.io-client loaded before us) and add to it, as sails.io.js does.
  const io = (root.io && (typeof root.io === 'object' || typeof root.io === 'function')) ? root.io : {};
  root.io = io;

  const scriptTag = document.currentScript || (function () {
    const scripts = document.getElementsByTagName('script');
    return scripts[scripts.length - 1];
  })();
  const scriptUrl = (scriptTag && scriptTag.src) || '';
  const locals = root.SAILS_LOCALS;

  io.sails = {
    url: undefined,
    path: '/socket.io',
    query: undefined,
    headers: undefined,
    transports: ['websocket'],
    autoConnect: true,
    timeout: 20000,
    reconnection: true,
    reconnectionAttempts: Infinity,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 10000,
    randomizationFactor: 0.5,
    useCORSRouteToGetCookie: true,
    initialConnectionHeaders: undefined,
    // 'production' silences our console messages.
    environment: (/(#production|\.min\.js)/.test(scriptUrl) ||
      (locals && (locals._environment === 'production' || locals._environment === 'staging'))) ? 'production' : 'development',
    sdk: SDK_INFO,
    // Open a new, independent connection: io.sails.connect([url], [options]).
    connect: function (url, options) {
      if (url && typeof url === 'object') { options = url; url = undefined; }
      options = Object.assign({}, options);
      options.url = url || options.url;
      const socket = new SailsSocket(options);
      socket._connect();
      return socket;
    },
  };
  io.SailsSocket = SailsSocket;
  io.JWR = JWR;
  io.Presence = Presence;

  // Options given as attributes of the <script> tag (`data-` prefixed ones win), parsed as JSON when
  // they are JSON, e.g. <script src="..." autoConnect="false" headers='{"x-token":"abc"}'>.
  if (scriptTag && scriptTag.getAttribute) {
    for (const name of SCRIPT_TAG_OPTIONS) {
      let value = scriptTag.getAttribute('data-' + name);
      if (!value) { value = scriptTag.getAttribute(name); }
      if (value === null) { continue; }
      try { value = JSON.parse(value); } catch (notJson) { /* keep the string */ }
      if ((name === 'autoConnect' || name === 'reconnection') && value === '') { value = true; }
      const expected = { autoConnect: 'boolean', reconnection: 'boolean', environment: 'string', url: 'string', path: 'string' }[name];
      const valid = expected ? typeof value === expected
        : name === 'headers' ? isDictionary(value) : Array.isArray(value);   // transports
      if (!valid) {
        throw new Error('sails.io.js: invalid `' + name + '` attribute on the script tag: ' + JSON.stringify(value));
      }
      io.sails[name] = value;
    }
  }

  // The eager socket: it exists at once (so listeners and requests can be added right away) and
  // connects one tick later, which leaves the page's scripts time to configure `io.sails`. While the
  // page is still being parsed, that tick comes after DOMContentLoaded: a browser may run a timer
  // between two <script> tags, and the inline script that follows ours must still come first.
  const eager = io.socket = new SailsSocket();
  eager._mightBeAboutToAutoConnect = true;
  function autoConnect() {
    eager._mightBeAboutToAutoConnect = false;
    if (io.sails.autoConnect === false || io.sails.autoconnect === false) {
      if (io.socket === eager) { delete io.socket; }
      return;
    }
    eager._connect();
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', function () { setTimeout(autoConnect, 0); });
  } else {
    setTimeout(autoConnect, 0);
  }
})(typeof window !== 'undefined' ? window : this);
