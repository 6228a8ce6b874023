"""The benchmark user, as benchmarks/peers/sails_app/api/models/User.js."""

from trisails import Model, Optional, Required


class User(Model):
    name = Required(str)
    age = Optional(int)
