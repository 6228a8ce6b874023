"""The docs' first socket action, in Python.

A socket request to ``/say/hello`` joins the room ``funSockets`` and tells everyone in it who just
arrived, the new socket included (the Sails page says the hello goes "to all sockets in that room
(including the new one)", and its page logs its own arrival too); an HTTP request gets a 400, as in the
Sails documentation's example.
"""

from trisails import Request, Response, sails


async def hello(req: Request, res: Response) -> None:
    if not req.is_socket:
        return res.bad_request()

    sails.sockets.join(req, "funSockets")
    sails.sockets.broadcast("funSockets", "hello", {"id": sails.sockets.get_id(req)})
    return res.ok()
