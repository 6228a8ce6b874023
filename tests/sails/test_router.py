"""The route table: Sails route syntax, explicit routes before action routes, clear errors."""

from __future__ import annotations

import pytest

from trisails import ConfigError
from trisails.web.router import Router


def action(req, res):  # noqa: ANN001, ANN201 - a stand-in action
    return None


def other(req, res):  # noqa: ANN001, ANN201
    return None


def test_a_verb_and_path_with_parameters() -> None:
    router = Router()
    router.add("GET /user/:id", action)
    route, params = router.match("GET", "/user/7")  # type: ignore[misc]
    assert route.action is action and params == {"id": "7"}
    assert router.match("POST", "/user/7") is None
    assert router.match("GET", "/user/7/") is not None  # a trailing slash is forgiven
    assert router.match("GET", "/user") is None
    assert router.match("HEAD", "/user/7") is not None  # HEAD is answered by GET routes


def test_optional_parameters_wildcards_and_any_verb() -> None:
    router = Router()
    router.add("/files/*", action)
    router.add("GET /page/:name?", other)
    assert router.match("DELETE", "/files/a/b.txt")[1] == {"0": "a/b.txt"}  # type: ignore[index]
    assert router.match("GET", "/page")[1] == {}  # type: ignore[index]
    assert router.match("GET", "/page/about")[1] == {"name": "about"}  # type: ignore[index]


def test_explicit_routes_win_over_action_routes() -> None:
    router = Router()
    router.add_action("say/hello", action)
    router.add("GET /say/hello", other)
    assert router.match("GET", "/say/hello")[0].action is other  # type: ignore[index]
    assert router.match("POST", "/say/hello")[0].action is action  # type: ignore[index]


def test_a_route_can_name_its_action_and_carry_options() -> None:
    router = Router()
    router.add_action("say/hello", action, route=False)
    route = router.add("GET /hi", {"action": "say.hello", "greeting": "hi"})
    assert route.action is action and route.options == {"greeting": "hi"}
    assert router.match("GET", "/say/hello") is None  # no action route when asked for none


def test_mistakes_are_named() -> None:
    router = Router()
    router.add_action("say/hello", action)
    with pytest.raises(ConfigError, match="no action named 'say/bye'.*known actions: say/hello"):
        router.add("GET /bye", "say.bye")
    with pytest.raises(ConfigError, match="unknown verb 'FETCH'"):
        router.add("FETCH /x", action)
    with pytest.raises(ConfigError, match="must start with '/'"):
        router.add("GET x", action)
    with pytest.raises(ConfigError, match="'action' key"):
        router.add("GET /x", {"skip": 1})


def test_options_lists_the_verbs_a_path_answers() -> None:
    router = Router()
    router.add("GET /thing", action)
    router.add("POST /thing", action)
    assert router.allowed_methods("/thing") == ["GET", "HEAD", "POST"]


def test_paths_match_without_regard_to_case_and_parameters_keep_theirs() -> None:
    router = Router()
    router.add("GET /user/:name", action)
    assert router.match("GET", "/USER/Ada")[1] == {"name": "Ada"}  # type: ignore[index]


def test_parameters_keep_their_names_and_registering_an_action_again_replaces_it() -> None:
    router = Router()
    router.add("GET /thing/:_id/*", action)
    assert router.match("GET", "/thing/7/a/b")[1] == {"_id": "7", "0": "a/b"}  # type: ignore[index]
    router.add_action("say/hello", action)
    router.add_action("say/hello", other)
    assert router.match("GET", "/say/hello")[0].action is other  # type: ignore[index]
