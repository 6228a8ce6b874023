"""A pet, which may have an owner: adding one to ``user.pets`` sets ``pet.owner``, and both sides hear it."""

from trisails import Model, Optional, Required


class Pet(Model):
    name = Required(str)
    owner = Optional("User")
