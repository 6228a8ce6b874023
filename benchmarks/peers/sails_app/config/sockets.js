var ms = function (name, fallback) { return process.env[name] ? Number(process.env[name]) : fallback; };
module.exports.sockets = {
  transports: ['websocket'],
  // Node clients send no Origin header; allow any page, as the other servers of the benchmark do.
  onlyAllowOrigins: ['http://127.0.0.1', 'http://localhost'],
  pingInterval: ms('BENCH_PING_INTERVAL', 25000),
  pingTimeout: ms('BENCH_PING_TIMEOUT', 60000),
  grant3rdPartyCookie: false
};
