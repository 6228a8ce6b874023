"""The sans-I/O protocol core: websocket framing, Engine.IO and Socket.IO codecs, with no networking code.

Everything here takes strings or bytes in and gives packets out, or the reverse. Nothing imports trio,
opens a socket or reads a clock, so every rule of the wire format can be tested as a byte transcript.
The I/O layer in :mod:`trisails.realtime` only moves what these functions produce.
"""
