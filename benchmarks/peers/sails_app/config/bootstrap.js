/**
 * The raw Socket.IO events of the benchmarks, on every connection:
 * - `echo` (payload, ack): acknowledged with the payload;
 * - `join` (room, ack): joins the room, then acknowledges;
 * - `fanout` ({room, payload}, ack): `sails.sockets.broadcast(room, 'fanout', payload)`, then acknowledges.
 */
module.exports.bootstrap = async function () {
  sails.io.on('connection', function (socket) {
    socket.on('echo', function (payload, ack) {
      if (typeof ack === 'function') { ack(payload); }
    });
    socket.on('join', function (room, ack) {
      socket.join(room);
      if (typeof ack === 'function') { ack(true); }
    });
    socket.on('fanout', function (message, ack) {
      sails.sockets.broadcast(message.room, 'fanout', message.payload);
      if (typeof ack === 'function') { ack(true); }
    });
  });
};
