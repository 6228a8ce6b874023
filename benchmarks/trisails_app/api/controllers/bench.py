"""``GET /bench/echo`` answers its parameters as JSON (Sails: ``res.json(req.allParams())``)."""

from trisails import Request, Response


async def echo(req: Request, res: Response) -> None:
    return res.json(req.all_params())
