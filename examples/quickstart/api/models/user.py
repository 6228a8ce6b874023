"""A user: ``GET /user``, ``POST /user``, ... come with the model, and so do their socket messages."""

from trisails import Model, Optional, Required, Set


class User(Model):
    name = Required(str)
    age = Optional(int)
    pets = Set("Pet")
