"""Rooms by hand, with the ``sails.sockets`` API: the same calls work when the app runs as several
processes sharing Redis (``python -m trisails examples/quickstart --redis redis://127.0.0.1:6379/0``).

A socket can put any socket, by its id, in a room (wherever that socket is connected), shout to a
room, and ask how many sockets a room holds across every process.
"""

from trisails import Request, Response, sails


async def invite(req: Request, res: Response) -> None:
    """``POST /rooms/invite {socket, room}``: put the socket with that id in the room."""
    socket, room = req.param("socket"), req.param("room")
    if not isinstance(socket, str) or not isinstance(room, str):
        return res.bad_request("send the socket id and the room name: {socket, room}")
    sails.sockets.join(socket, room)
    return res.ok()


async def shout(req: Request, res: Response) -> None:
    """``POST /rooms/shout {room, text}``: everyone in the room but the sender hears ``shout``."""
    room = req.param("room")
    if not isinstance(room, str):
        return res.bad_request("send the room name: {room, text}")
    sails.sockets.broadcast(room, "shout", {"text": req.param("text"), "from": sails.sockets.get_id(req)}, req)
    return res.ok()


async def count(req: Request, res: Response) -> None:
    """``GET /rooms/count?room=...``: how many sockets are in the room, in every process."""
    room = req.param("room")
    if not isinstance(room, str):
        return res.bad_request("send the room name: ?room=...")
    return res.ok({"room": room, "sockets": await sails.sockets.count(room)})
