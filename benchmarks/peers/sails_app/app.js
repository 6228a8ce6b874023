/**
 * Lift the benchmark Sails app: `node app.js` with PORT (and optionally BENCH_PING_INTERVAL,
 * BENCH_PING_TIMEOUT in ms) in the environment. Prints "LIFTED <port>" once it accepts connections.
 *
 * The orchestrator (benchmarks/__main__.py) copies this folder into benchmarks/.peers/sails_app, where
 * `npm ci` installed its node_modules, and starts it there. BENCH_SESSIONS=off turns the session hook off.
 */
process.chdir(__dirname);
var sails = require('sails');
var port = Number(process.env.PORT || 1337);
var hooks = { grunt: false };
if (process.env.BENCH_SESSIONS === 'off') { hooks.session = false; } // python -m benchmarks --no-sessions
sails.lift({ port: port, hooks: hooks }, function (err) {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log('LIFTED ' + port);
});
function stop() {
  sails.lower(function () { process.exit(0); });
  setTimeout(function () { process.exit(0); }, 3000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
