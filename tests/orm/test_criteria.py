"""Blueprint criteria: parameters in, normalized criteria and Pony lambdas out.

First the rules, one story each (``where``, values, modifiers, the other parameters, the lambdas),
then every way a request can be refused, then the same criteria applied to real Pony queries on an
in-memory SQLite database, checked against the records each should return. Last, property tests: any
input is a query or a UsageError, and random clauses (and like patterns) find on the database exactly
what a reference in plain Python finds.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pony import orm

from trisails._errors import TrisailsError
from trisails.orm.criteria import (
    MAX_DEPTH,
    MAX_VALUES,
    MODIFIERS,
    Criteria,
    Field,
    UsageError,
    apply,
    order_by,
    parse_find,
    parse_where,
    to_pony,
)

USER = {
    "id": Field("id", "id", "scalar", int),
    "name": Field("name", "name", "scalar", str),
    "age": Field("age", "age", "scalar", int),
    "createdAt": Field("createdAt", "created_at", "scalar", int),
    "pets": Field("pets", "pets", "to_many", int),
}
PET = {
    "id": Field("id", "id", "scalar", int),
    "name": Field("name", "name", "scalar", str),
    "owner": Field("owner", "owner", "to_one", int),
}


def where(params: dict[str, Any], fields: dict[str, Field] = USER) -> Any:
    return parse_find(params, fields).where


def refusal(params: dict[str, Any], fields: dict[str, Field] = USER) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse_find(params, fields)
    return caught.value


# --- where: where it comes from -----------------------------------------------------------------------


def test_where_comes_as_a_json_string_from_the_query_string() -> None:
    assert where({"where": '{"name":"ann","age":{">":30}}'}) == {"and": [{"name": "ann"}, {"age": {">": 30}}]}


def test_where_comes_as_an_object_from_a_socket_request_body() -> None:
    assert where({"where": {"age": {"<=": 30}}}) == {"age": {"<=": 30}}


def test_without_where_every_other_parameter_is_an_equality_id_included() -> None:
    params = {"name": "ann", "id": "7", "limit": "2", "skip": "1", "sort": "age", "select": "name", "populate": "false"}
    assert where(params) == {"and": [{"name": "ann"}, {"id": 7}]}


def test_a_where_parameter_wins_over_the_other_parameters() -> None:
    assert where({"where": '{"age": 30}', "name": "ann"}) == {"age": 30}


def test_a_null_where_counts_as_absent() -> None:
    assert where({"where": None, "name": "ann"}) == {"name": "ann"}


def test_no_parameters_match_every_record() -> None:
    assert where({}) == {}
    assert where({"where": "{}"}) == {}


def test_a_repeated_query_parameter_means_any_of_its_values() -> None:
    assert where({"age": ["30", "40"]}) == {"age": {"in": [30, 40]}}


def test_a_parameter_of_its_own_can_carry_modifiers_in_a_socket_body() -> None:
    assert where({"age": {">": 30, "<": 40}}) == {"and": [{"age": {">": 30}}, {"age": {"<": 40}}]}


# --- where: values are converted as Sails' loose typing does ------------------------------------------


@pytest.mark.parametrize(
    ("field", "sent", "stored"),
    [
        ("age", "30", 30),
        ("age", " 30 ", 30),
        ("age", 30.0, 30),
        ("age", "3e1", 30),
        ("age", "-4", -4),
        ("name", "ann", "ann"),
        ("name", 30, "30"),
        ("name", 2.5, "2.5"),
        ("name", True, "true"),
        ("pets", "7", 7),
    ],
)
def test_values_take_the_type_of_their_attribute(field: str, sent: Any, stored: Any) -> None:
    converted = where({"where": {field: sent}})[field]
    assert (converted, type(converted)) == (stored, type(stored))


@pytest.mark.parametrize(("sent", "stored"), [("true", True), ("false", False), (True, True), ("1", True), (0, False)])
def test_booleans_come_as_true_and_false(sent: Any, stored: bool) -> None:
    fields = {"active": Field("active", "active", "scalar", bool)}
    assert where({"active": sent}, fields) == {"active": stored}


def test_dates_and_times_come_as_iso_8601_text() -> None:
    fields = {"born": Field("born", "born", "scalar", date), "seen": Field("seen", "seen", "scalar", datetime)}
    assert where({"born": "2020-02-29", "seen": "2026-11-28T10:00:00"}, fields) == {
        "and": [{"born": date(2020, 2, 29)}, {"seen": datetime(2026, 11, 28, 10)}]
    }


def test_a_reference_to_one_record_is_compared_by_its_primary_key() -> None:
    assert where({"owner": "3"}, PET) == {"owner": 3}
    assert where({"where": '{"owner": null}'}, PET) == {"owner": None}


def test_null_is_an_equality_like_any_other() -> None:
    assert where({"where": '{"name": null}'}) == {"name": None}


# --- where: modifiers -------------------------------------------------------------------------------


@pytest.mark.parametrize("modifier", ["<", "<=", ">", ">="])
def test_comparisons_keep_their_modifier(modifier: str) -> None:
    assert where({"where": {"age": {modifier: "30"}}}) == {"age": {modifier: 30}}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("lessThan", "<"),
        ("lessThanOrEqual", "<="),
        ("greaterThan", ">"),
        ("greaterThanOrEqual", ">="),
        ("not", "!="),
        ("!", "!="),
    ],
)
def test_waterlines_older_spellings_are_understood(old: str, new: str) -> None:
    assert where({"where": {"age": {old: 30}}}) == {"age": {new: 30}}


def test_an_array_is_shorthand_for_in_and_duplicates_go() -> None:
    assert where({"where": {"age": [30, "30", 40]}}) == {"age": {"in": [30, 40]}}


def test_not_equal_to_an_array_means_not_in() -> None:
    assert where({"where": {"age": {"!=": [30, 40]}}}) == {"age": {"nin": [30, 40]}}
    assert where({"where": {"age": {"!": [30]}}}) == {"age": {"nin": [30]}}


def test_not_equal_to_null_means_has_a_value() -> None:
    assert where({"where": {"owner": {"!=": None}}}, PET) == {"owner": {"!=": None}}


def test_an_empty_in_matches_nothing_and_an_empty_nin_everything() -> None:
    assert where({"where": {"age": {"in": []}}}) == {"or": []}
    assert where({"where": {"age": {"nin": []}}}) == {}


@pytest.mark.parametrize("modifier", ["contains", "startsWith", "endsWith"])
def test_string_searches_keep_their_text_and_an_empty_one_matches_everything(modifier: str) -> None:
    assert where({"where": {"name": {modifier: "a%_"}}}) == {"name": {modifier: "a%_"}}
    assert where({"where": {"name": {modifier: ""}, "age": 3}}) == {"age": 3}


def test_a_like_pattern_of_only_percent_signs_matches_everything() -> None:
    assert where({"where": {"name": {"like": "%%"}}}) == {}


def test_a_collection_is_filtered_by_the_ids_of_its_records() -> None:
    assert where({"pets": "7"}) == {"pets": 7}
    assert where({"where": {"pets": {"in": [7, 8]}}}) == {"pets": {"in": [7, 8]}}


# --- where: or, and ---------------------------------------------------------------------------------


def test_or_and_and_nest() -> None:
    clause = {"or": [{"name": "ann"}, {"and": [{"age": {">": 30}}, {"age": {"<": 40}}]}]}
    assert where({"where": clause}) == {"or": [{"name": "ann"}, {"and": [{"age": {">": 30}}, {"age": {"<": 40}}]}]}


def test_or_and_and_fold_into_the_simplest_clause_that_means_the_same() -> None:
    assert where({"where": {"or": [{"name": "ann"}]}}) == {"name": "ann"}
    assert where({"where": {"and": []}}) == {}
    assert where({"where": {"or": []}}) == {"or": []}
    assert where({"where": {"or": [{"name": "ann"}, {}]}}) == {}
    assert where({"where": {"and": [{"name": "ann"}, {"age": {"in": []}}]}}) == {"or": []}
    assert where({"where": {"or": [{"or": [{"age": 1}, {"age": 2}]}, {"age": 3}]}}) == {
        "or": [{"age": 1}, {"age": 2}, {"age": 3}]
    }


def test_a_normalized_clause_normalizes_to_itself() -> None:
    clause = where({"where": {"name": {"like": "a_%"}, "or": [{"age": [1, 2]}, {"pets": 3}, {"age": {"!=": None}}]}})
    assert parse_where(clause, USER) == clause


# --- limit, skip, sort, select, omit, populate --------------------------------------------------------


def test_the_defaults_are_thirty_records_from_the_first_by_primary_key_with_every_association() -> None:
    assert parse_find({}, USER) == Criteria(where={}, limit=30, skip=0, sort=(), select=None, omit=None, populate=None)


def test_limit_and_skip_come_as_digits_or_numbers() -> None:
    criteria = parse_find({"limit": "5", "skip": 10}, USER)
    assert (criteria.limit, criteria.skip) == (5, 10)
    assert parse_find({"limit": 0}, USER).limit == 0


def test_the_default_limit_is_the_callers() -> None:
    assert parse_find({}, USER, default_limit=None).limit is None
    assert parse_find({}, USER, default_limit=100).limit == 100


@pytest.mark.parametrize(
    "sort",
    [
        "name DESC, age",
        "name desc,age ASC",
        '{"name": "DESC", "age": "ASC"}',
        '[{"name": "DESC"}, {"age": "ASC"}]',
        '["name DESC", "age"]',
        {"name": -1, "age": 1},
        [{"name": "DESC"}, "age"],
    ],
)
def test_sort_comes_in_every_form_sails_and_waterline_know(sort: Any) -> None:
    assert parse_find({"sort": sort}, USER).sort == (("name", "DESC"), ("age", "ASC"))


def test_sort_by_a_reference_sorts_by_its_key() -> None:
    assert parse_find({"sort": "owner DESC"}, PET).sort == (("owner", "DESC"),)


def test_select_and_omit_are_comma_lists_with_or_without_brackets() -> None:
    assert parse_find({"select": "name, age,name"}, USER).select == ("name", "age")
    assert parse_find({"omit": "[createdAt]"}, USER).omit == ("createdAt",)
    assert parse_find({"select": ["name", "age"]}, USER).select == ("name", "age")
    assert parse_find({"select": ""}, USER).select is None


@pytest.mark.parametrize(
    ("populate", "expected"),
    [
        ("pets", ("pets",)),
        ("[pets]", ("pets",)),
        (["pets"], ("pets",)),
        ("false", ()),
        (False, ()),
        ("", None),
        ([], ()),
    ],
)
def test_populate_names_associations_or_says_false(populate: Any, expected: tuple[str, ...] | None) -> None:
    assert parse_find({"populate": populate}, USER).populate == expected


# --- the lambdas --------------------------------------------------------------------------------------


def lambda_for(clause: dict[str, Any], fields: dict[str, Field] = USER) -> tuple[str, dict[str, Any]]:
    return to_pony(parse_where(clause, fields), fields)


def test_values_travel_only_as_parameters() -> None:
    assert lambda_for({"name": "x') or True or ('", "age": {">": 30}}) == (
        "lambda r: (r.name == p0 and r.age > p1)",
        {"p0": "x') or True or ('", "p1": 30},
    )


def test_attributes_go_by_their_pony_names() -> None:
    assert lambda_for({"createdAt": {">=": 100}}) == ("lambda r: r.created_at >= p0", {"p0": 100})


def test_the_empty_clause_matches_everything_and_the_empty_or_nothing() -> None:
    assert lambda_for({}) == ("lambda r: True", {})
    assert lambda_for({"or": []}) == ("lambda r: False", {})


@pytest.mark.parametrize(
    ("clause", "source", "params"),
    [
        ({"name": None}, "r.name is None", {}),
        ({"name": {"!=": None}}, "r.name is not None", {}),
        ({"name": {"!=": "ann"}}, "(r.name != p0 or r.name is None)", {"p0": "ann"}),
        ({"age": {"in": [1, 2]}}, "r.age in p0", {"p0": (1, 2)}),
        ({"age": {"nin": [1, 2]}}, "(r.age not in p0 or r.age is None)", {"p0": (1, 2)}),
        ({"name": {"contains": "nn"}}, "p0 in r.name", {"p0": "nn"}),
        ({"name": {"startsWith": "a"}}, "r.name.startswith(p0)", {"p0": "a"}),
        ({"name": {"endsWith": "n"}}, "r.name.endswith(p0)", {"p0": "n"}),
        ({"or": [{"age": 1}, {"age": {">": 5}, "name": "x"}]}, "(r.age == p0 or (r.age > p1 and r.name == p2))", None),
    ],
)
def test_each_modifier_has_its_pony_expression(
    clause: dict[str, Any], source: str, params: dict[str, Any] | None
) -> None:
    written, bound = lambda_for(clause)
    assert written == f"lambda r: {source}"
    assert params is None or bound == params


@pytest.mark.parametrize(
    ("clause", "source"),
    [
        ({"owner": 3}, "r.owner.id == p0"),
        ({"owner": None}, "r.owner is None"),
        ({"owner": {"!=": 3}}, "(r.owner.id != p0 or r.owner is None)"),
        ({"owner": {"in": [3, 4]}}, "r.owner.id in p0"),
        ({"owner": {">": 3}}, "r.owner.id > p0"),
    ],
)
def test_a_reference_compares_the_related_primary_key(clause: dict[str, Any], source: str) -> None:
    assert lambda_for(clause, PET)[0] == f"lambda r: {source}"


def test_a_collection_asks_whether_one_of_its_records_has_the_key() -> None:
    assert lambda_for({"pets": 7}) == ("lambda r: p0 in r.pets.id", {"p0": 7})
    assert lambda_for({"pets": [7, 8]}) == ("lambda r: (p0 in r.pets.id or p1 in r.pets.id)", {"p0": 7, "p1": 8})


def test_the_related_primary_key_can_have_another_name() -> None:
    fields = {"owner": Field("owner", "owner", "to_one", str, related_pk="code")}
    assert lambda_for({"owner": "x"}, fields)[0] == "lambda r: r.owner.code == p0"


@pytest.mark.parametrize(
    ("pattern", "source", "params"),
    [
        ("ann", "r.name == p0", ["ann"]),
        ("a%", "r.name.startswith(p0)", ["a"]),
        ("%n", "r.name.endswith(p0)", ["n"]),
        ("%nn%", "p0 in r.name", ["nn"]),
        ("a%n", "(r.name.startswith(p0) and r.name.endswith(p1) and len(r.name) >= 2)", ["a", "n"]),
        ("a_n", "(len(r.name) == 3 and r.name.startswith(p0) and r.name[2:3] == p1)", ["a", "n"]),
        ("_", "len(r.name) == 1", []),
        ("__%", "len(r.name) >= 2", []),
        ("%a_", "(r.name[-2:-1] == p0 and len(r.name) >= 2)", ["a"]),
        ("a%n%", "(r.name.startswith(p0) and p1 in r.name[1:] and len(r.name) >= 2)", ["a", "n"]),
        ("%_x_%y", "(r.name.endswith(p0) and p1 in r.name[1:-2] and len(r.name) >= 4)", ["y", "x"]),
        ("%ab%_", "((p0 in r.name[:-2] or r.name[-3:-1] == p0) and len(r.name) >= 3)", ["ab"]),
        ("50\\%%", "r.name.startswith(p0)", ["50%"]),
        ("a\\_b", "r.name == p0", ["a_b"]),
    ],
)
def test_like_becomes_tests_pony_can_run(pattern: str, source: str, params: list[str]) -> None:
    written, bound = lambda_for({"name": {"like": pattern}})
    assert (written, list(bound.values())) == (f"lambda r: {source}", params)


def test_order_by_sorts_by_primary_key_by_default_and_breaks_ties_with_it() -> None:
    assert order_by((), USER) == "lambda r: r"
    assert order_by((("name", "DESC"), ("createdAt", "ASC")), USER) == "lambda r: (desc(r.name), r.created_at, r)"


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter", "says"),
    [
        ({"where": "{name: 1}"}, "where", "Could not parse the provided `where` as JSON"),
        ({"where": ""}, "where", "as JSON"),
        ({"where": '{"age": NaN}'}, "where", "NaN is not JSON"),
        ({"where": "[1]"}, "where", "should be a dictionary (a JSON object), but it is an array"),
        ({"where": "5"}, "where", "but it is a number (`5`)"),
        ({"where": '{"nope": 1}'}, "where", "Cannot filter by `nope`: it is not a recognized attribute"),
        ({"nope": "1"}, "nope", "Cannot filter by `nope`"),
        ({"age": "abc"}, "age", '`"abc"` is not a valid value for `age`: expected an integer'),
        ({"age": "3.5"}, "age", "expected an integer"),
        ({"age": str(2**63)}, "age", "expected an integer"),
        ({"age": True}, "age", "expected an integer"),
        ({"where": {"name": {"lik": "a"}}}, "where", "Unrecognized modifier (`lik`) within the constraint for `name`"),
        ({"where": {"name": {}}}, "where", "empty dictionary"),
        ({"where": {"age": {">": None}}}, "where", "`null` cannot be used with `>`"),
        ({"where": {"age": {">": [1]}}}, "where", "takes one value, but got an array"),
        ({"where": {"age": {"in": 3}}}, "where", "An `in` modifier takes an array"),
        ({"where": {"age": {"in": [None]}}}, "where", "to match `null`, use `or`"),
        ({"where": {"age": {"contains": "3"}}}, "where", "`contains` searches text, and `age` is not a string"),
        ({"where": {"owner": {"startsWith": "3"}}}, "where", "is not a string attribute"),
        ({"where": {"name": {"like": ""}}}, "where", "takes a non-empty string pattern"),
        ({"where": {"name": {"like": 3}}}, "where", "takes a non-empty string pattern"),
        ({"where": {"name": {"like": "%a%b%"}}}, "where", "two runs of text"),
        ({"where": {"name": {"like": "%a_b%"}}}, "where", "`_` inside it"),
        ({"where": {"pets": None}}, "where", "`pets` is a collection"),
        ({"where": {"pets": {">": 3}}}, "where", "`pets` is a collection"),
        ({"where": {"or": {"age": 1}}}, "where", "`or` takes an array of dictionaries"),
        ({"where": {"and": [1]}}, "where", "Each item of an `and` array should be a dictionary"),
        ({"where": {"name": "\ud800"}}, "where", "expected valid Unicode text"),
        ({"age": "\u0663"}, "age", "expected an integer"),
        ({"limit": "-1"}, "limit", "`limit` should be a non-negative integer"),
        ({"limit": "\u00b2"}, "limit", "`limit` should be a non-negative integer"),
        ({"limit": "ten"}, "limit", "but got `\"ten\"`"),
        ({"limit": ["1", "2"]}, "limit", "non-negative integer"),
        ({"skip": 1.5}, "skip", "`skip` should be a non-negative integer"),
        ({"sort": "nope"}, "sort", "Cannot sort by `nope`"),
        ({"sort": "name UP"}, "sort", "`\"UP\"` is not a sort direction"),
        ({"sort": "name DESC age"}, "sort", "write an attribute and a direction"),
        ({"sort": "name, name DESC"}, "sort", "Cannot sort by `name` twice"),
        ({"sort": "pets"}, "sort", "Cannot sort by `pets`: it is a collection"),
        ({"sort": "[1]"}, "sort", "Cannot sort by `1`"),
        ({"sort": '{"name": "DESC"'}, "sort", "Could not parse the provided `sort` as JSON"),
        ({"select": "nope"}, "select", "Cannot select `nope`"),
        ({"omit": "name", "select": "age"}, "omit", "Cannot use both `select` and `omit`"),
        ({"omit": [1]}, "omit", "should list attribute names"),
        ({"populate": "nope"}, "populate", "Cannot populate `nope`: it is not a recognized attribute"),
        ({"populate": "name"}, "populate", "Cannot populate `name`: it is not an association"),
    ],
)
def test_what_cannot_make_a_query_is_refused_naming_the_parameter(
    params: dict[str, Any], parameter: str, says: str
) -> None:
    error = refusal(params, PET if "owner" in json.dumps(params) else USER)
    assert error.parameter == parameter
    assert says in error.details


def test_unknown_names_are_shown_safely_in_the_details() -> None:
    error = refusal({"where": {"\ud800" + "x" * 100: 1}})
    orjson.dumps(error.response_body("GET", "/user", production=False))
    assert "\\ud800" in error.details and "..." in error.details


def test_a_where_clause_has_limits_on_its_size() -> None:
    deep: dict[str, Any] = {"age": 1}
    for _ in range(MAX_DEPTH + 1):
        deep = {"or": [deep, {"age": 2}]}
    assert "more than 10 levels" in refusal({"where": deep}).details
    assert "more than 500 values" in refusal({"where": {"age": list(range(MAX_VALUES + 1))}}).details
    assert "more than 500 values" in refusal({"where": {"name": {"like": "a_" * MAX_VALUES}}}).details
    assert "nested too deeply" in refusal({"where": "[" * 100_000}).details


def test_a_field_names_its_pony_attribute_with_an_identifier() -> None:
    with pytest.raises(ValueError, match="not a Python identifier"):
        Field("x", "x or True", "scalar", int)
    with pytest.raises(ValueError, match="not a Python identifier"):
        Field("x", "x", "to_one", int, related_pk="id; import os")
    with pytest.raises(ValueError, match="kind"):
        Field("x", "x", "many", int)  # type: ignore[arg-type]


def test_to_pony_refuses_what_parse_where_refuses() -> None:
    with pytest.raises(UsageError, match="nope"):
        to_pony({"nope": 1}, USER)
    with pytest.raises(UsageError, match="collection"):
        order_by((("pets", "ASC"),), USER)


def test_attributes_of_unsupported_types_cannot_be_filtered_but_can_be_sorted() -> None:
    fields = {"data": Field("data", "data", "scalar", dict)}
    assert "trisails cannot compare dict values" in refusal({"data": "x"}, fields).details
    assert order_by((("data", "ASC"),), fields) == "lambda r: (r.data, r)"


# --- the error body -----------------------------------------------------------------------------------


def test_the_error_body_is_sails_formatusageerror_with_the_tip_only_in_development() -> None:
    error = refusal({"limit": "x"})
    assert isinstance(error, TrisailsError)
    assert error.response_body("GET", "/user", production=True) == {
        "code": "E_INVALID_CRITERIA",
        "details": error.details,
        "message": "The server could not fulfill this request (`GET /user`) due to a problem with the parameters "
        "that were sent.  See the `details` for more info.",
    }
    development = error.response_body("GET", "/user", production=False)
    assert list(development) == ["code", "details", "message"]
    assert development["message"].endswith(
        "See the `details` for more info.  **The following additional tip will not be shown in production**:  "
        "Tip: Check your client-side code to make sure that the request data it sends matches the expectations "
        "of the corresponding attribues in your model.  Also check that your client-side code sends data for "
        "every required attribute."
    )


# --- on a real database -------------------------------------------------------------------------------
# One in-memory SQLite database for the module. Pony connects per thread; these tests are synchronous
# and run on pytest's thread, and every query runs inside its own db_session.

USERS = [
    # id, name, age, created_at
    (1, "ann", 30, 100),
    (2, "Bob", 40, 200),
    (3, "carl", 20, 300),
    (4, "dana_x", 35, 400),
    (5, "50%off", 25, 500),
    (6, "ann marie", 30, 600),
]
PETS = [(1, "rex", 1), (2, "tom", 1), (3, "fifi", 2), (4, "stray", None)]
WORDS = ["a", "b", "_", "%", "ab", "ba", "aa", "a_", "%a", "aba", "abb", "bab", "a%b", "abab", "baba", "aabb", "b_a_"]


class Models:
    def __init__(self) -> None:
        self.db = orm.Database()

        class User(self.db.Entity):  # type: ignore[name-defined]
            name = orm.Required(str)
            age = orm.Required(int)
            created_at = orm.Required(int)
            pets = orm.Set("Pet")

        class Pet(self.db.Entity):  # type: ignore[name-defined]
            name = orm.Required(str)
            owner = orm.Optional(User)

        class Word(self.db.Entity):  # type: ignore[name-defined]
            text = orm.Required(str)

        self.User, self.Pet, self.Word = User, Pet, Word
        self.db.bind(provider="sqlite", filename=":sharedmemory:")
        self.db.generate_mapping(create_tables=True)
        with orm.db_session:
            for id, name, age, created_at in USERS:
                User(id=id, name=name, age=age, created_at=created_at)
            for id, name, owner in PETS:
                Pet(id=id, name=name, owner=owner)
            for text in WORDS:
                Word(text=text)

    def find(self, params: dict[str, Any], entity: Any = None, fields: dict[str, Field] = USER) -> list[Any]:
        """The ids of the records a find with ``params`` returns, in order."""
        criteria = parse_find(params, fields)
        with orm.db_session:
            return [record.id for record in apply((entity or self.User).select(), criteria, fields)]

    def pets(self, params: dict[str, Any]) -> list[int]:
        return self.find(params, self.Pet, PET)


@pytest.fixture(scope="module")
def models() -> Iterator[Models]:
    models = Models()
    yield models
    models.db.disconnect()


@pytest.mark.parametrize(
    ("clause", "ids"),
    [
        ({"name": "ann"}, [1]),
        ({"age": 30}, [1, 6]),
        ({"age": {"<": 30}}, [3, 5]),
        ({"age": {"<=": 30}}, [1, 3, 5, 6]),
        ({"age": {">": 30}}, [2, 4]),
        ({"age": {">=": 35}}, [2, 4]),
        ({"age": {"!=": 30}}, [2, 3, 4, 5]),
        ({"age": {"in": [20, 40]}}, [2, 3]),
        ({"age": {"nin": [20, 40]}}, [1, 4, 5, 6]),
        ({"age": {"in": []}}, []),
        ({"name": {"contains": "nn"}}, [1, 6]),
        ({"name": {"contains": "%"}}, [5]),
        ({"name": {"contains": "_"}}, [4]),
        ({"name": {"startsWith": "ann"}}, [1, 6]),
        ({"name": {"startsWith": "b"}}, []),
        ({"name": {"endsWith": "_x"}}, [4]),
        ({"name": {"like": "ann%"}}, [1, 6]),
        ({"name": {"like": "_a%"}}, [3, 4]),
        ({"name": {"like": "%i_"}}, [6]),
        ({"name": {"like": "%\\%%"}}, [5]),
        ({"name": {"like": "c__l"}}, [3]),
        ({"createdAt": {">": 450}}, [5, 6]),
        ({"or": [{"name": "Bob"}, {"age": {"<": 25}}]}, [2, 3]),
        ({"and": [{"age": {">": 20}}, {"age": {"<": 35}}]}, [1, 5, 6]),
        ({"pets": 3}, [2]),
        ({"pets": [1, 3]}, [1, 2]),
        ({"pets": 4}, []),
    ],
)
def test_each_rule_finds_the_right_users(models: Models, clause: dict[str, Any], ids: list[int]) -> None:
    assert models.find({"where": json.dumps(clause)}) == ids


@pytest.mark.parametrize(
    ("clause", "ids"),
    [
        ({"owner": 1}, [1, 2]),
        ({"owner": None}, [4]),
        ({"owner": {"!=": None}}, [1, 2, 3]),
        ({"owner": {"!=": 1}}, [3, 4]),
        ({"owner": {"nin": [2]}}, [1, 2, 4]),
        ({"owner": {"in": [2, 5]}}, [3]),
        ({"owner": {">": 1}}, [3]),
    ],
)
def test_each_rule_finds_the_right_pets_by_owner(models: Models, clause: dict[str, Any], ids: list[int]) -> None:
    assert models.pets({"where": json.dumps(clause)}) == ids


def test_query_string_parameters_find_records(models: Models) -> None:
    assert models.find({"age": "30", "name": ["ann", "Bob"]}) == [1]


def test_records_come_by_primary_key_then_as_sorted_with_ties_broken_by_primary_key(models: Models) -> None:
    assert models.find({}) == [1, 2, 3, 4, 5, 6]
    assert models.find({"sort": "age DESC"}) == [2, 4, 1, 6, 5, 3]
    assert models.find({"sort": "age, name DESC"}) == [3, 5, 6, 1, 4, 2]
    assert models.pets({"sort": "owner DESC"}) == [3, 1, 2, 4]


def test_limit_and_skip_page_through_the_sorted_records(models: Models) -> None:
    assert models.find({"sort": "age DESC", "limit": "2"}) == [2, 4]
    assert models.find({"sort": "age DESC", "limit": "2", "skip": "2"}) == [1, 6]
    assert models.find({"skip": "4"}) == [5, 6]
    assert models.find({"limit": "0"}) == []


def test_the_biggest_clause_accepted_still_runs_on_sqlite(models: Models) -> None:
    many_nots = {"or": [{"name": {"!=": f"x{i}"}} for i in range(MAX_VALUES // 2)]}
    assert models.find({"where": many_nots}) == [1, 2, 3, 4, 5, 6]
    many_pets = {"or": [{"pets": {"in": [i]}} for i in range(MAX_VALUES)]}
    assert models.find({"where": many_pets}) == [1, 2]
    assert "more than 500 values" in refusal({"where": {"or": [*many_nots["or"], {"age": 1}]}}).details
    many_tests = {"name": {"like": "a_" * (MAX_VALUES // 2 - 1)}}  # a length test and a test for each `a`
    assert to_pony(many_tests, USER)[0].count(" and ") == MAX_VALUES // 2 - 1
    assert models.find({"where": many_tests}) == []


# --- properties ---------------------------------------------------------------------------------------

KEYS = st.sampled_from([*USER, "owner", "or", "and", *MODIFIERS, "not", "lessThan", "where"]) | st.text(max_size=5)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=25
)


def check_usage(models: Models, params: dict[str, Any]) -> None:
    """Parse for users and for pets, and run what parses; only a UsageError, with a sendable body, may come out."""
    for entity, fields in ((models.User, USER), (models.Pet, PET)):
        try:
            criteria = parse_find(params, fields)
        except UsageError as error:
            orjson.dumps(error.response_body("GET", "/user", production=False))
            continue
        assert parse_where(criteria.where, fields) == criteria.where
        with orm.db_session:
            apply(entity.select(), criteria, fields)[:]


@given(JSON)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_as_where_is_a_query_or_a_usage_error(models: Models, value: Any) -> None:
    check_usage(models, {"where": value})
    try:
        text = json.dumps(value)
    except ValueError:
        return
    check_usage(models, {"where": text})


@given(st.dictionaries(KEYS, JSON, max_size=4))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_parameters_are_a_query_or_a_usage_error(models: Models, params: dict[str, Any]) -> None:
    check_usage(models, params)


@given(st.dictionaries(KEYS, st.text(max_size=10) | st.lists(st.text(max_size=5), max_size=3), max_size=4))
@settings(deadline=None)
def test_any_query_string_is_a_query_or_a_usage_error(models: Models, params: dict[str, Any]) -> None:
    check_usage(models, params)


TYPED = {
    kind.__name__: Field(kind.__name__, kind.__name__, "scalar", kind)
    for kind in (str, int, float, bool, Decimal, datetime, date, uuid.UUID)
}
NUMERIC_TEXT = st.text(
    st.characters(categories=["Nd", "No", "Zs"]) | st.sampled_from("0123456789.-+eE_:TZ"), max_size=12
)


DIGITS_OF_EVERY_SCRIPT = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=3)  # "٣", "²", "①"


@given(st.sampled_from([*TYPED, "limit", "skip"]), DIGITS_OF_EVERY_SCRIPT)
def test_digits_of_any_script_are_numbers_or_refused(name: str, value: str) -> None:
    try:
        parse_find({name: value}, TYPED)
    except UsageError:
        pass


@given(st.sampled_from([*TYPED, "limit", "skip"]), NUMERIC_TEXT | st.text() | JSON)
@settings(max_examples=300)
def test_any_value_for_any_attribute_type_is_converted_or_refused(name: str, value: Any) -> None:
    try:
        criteria = parse_find({name: value}, TYPED)
    except UsageError:
        return
    assert parse_where(criteria.where, TYPED) == criteria.where


def like_regex(pattern: str) -> re.Pattern[str]:
    """What SQL LIKE means, as a regular expression: the reference the Pony tests are checked against."""
    parts, characters = [], iter(pattern)
    for character in characters:
        if character == "\\":
            parts.append(re.escape(next(characters, "\\")))
        else:
            parts.append({"%": ".*", "_": "."}.get(character, re.escape(character)))
    return re.compile("".join(parts), re.DOTALL)


@given(st.text(alphabet="ab_%\\", min_size=1, max_size=6))
@settings(max_examples=300, deadline=None)
def test_like_finds_exactly_what_sql_like_would(models: Models, pattern: str) -> None:
    fields = {"text": Field("text", "text", "scalar", str)}
    try:
        found = models.find({"where": {"text": {"like": pattern}}, "limit": 100}, models.Word, fields)
    except UsageError as error:
        assert "Pony cannot" in error.details
        return
    with orm.db_session:
        expected = [word.id for word in models.Word.select().sort_by(1)[:] if like_regex(pattern).fullmatch(word.text)]
    assert found == expected


# A reference implementation of the normal form, in plain Python, for random clauses.


def matches(record: dict[str, Any], clause: dict[str, Any]) -> bool:
    for key, rhs in clause.items():
        if key in ("and", "or"):
            results = [matches(record, member) for member in rhs]
            if not (all(results) if key == "and" else any(results)):
                return False
        elif not satisfies(record[key], rhs):
            return False
    return True


def satisfies(value: Any, rhs: Any) -> bool:
    if not isinstance(rhs, dict):
        return rhs in value if isinstance(value, list) else value == rhs
    ((modifier, operand),) = rhs.items()
    if isinstance(value, list):  # a collection, which only takes `in`
        return any(item in value for item in operand)
    if modifier == "!=" and operand is None:
        return value is not None
    if modifier in ("!=", "nin"):
        return value is None or (value != operand if modifier == "!=" else value not in operand)
    if value is None:
        return False
    return {
        "<": lambda: value < operand,
        "<=": lambda: value <= operand,
        ">": lambda: value > operand,
        ">=": lambda: value >= operand,
        "in": lambda: value in operand,
        "contains": lambda: operand in value,
        "startsWith": lambda: value.startswith(operand),
        "endsWith": lambda: value.endswith(operand),
        "like": lambda: like_regex(operand).fullmatch(value) is not None,
    }[modifier]()


USER_RECORDS: list[dict[str, Any]] = [
    {"id": id, "name": name, "age": age, "createdAt": created_at, "pets": [p for p, _, owner in PETS if owner == id]}
    for id, name, age, created_at in USERS
]
PET_RECORDS: list[dict[str, Any]] = [{"id": id, "name": name, "owner": owner} for id, name, owner in PETS]
VALUES = {
    "id": st.integers(0, 7),
    "name": st.sampled_from(["ann", "Bob", "an", "a", "n", "_", "%", "50%off", "ann marie", "", "b"]),
    "age": st.integers(18, 42) | st.sampled_from(["30", "x"]),
    "createdAt": st.integers(0, 700),
    "pets": st.integers(0, 5),
    "owner": st.integers(0, 3) | st.none(),
}


@st.composite
def constraints(draw: st.DrawFn, fields: dict[str, Field]) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(fields)))
    values = VALUES[name] if name != "name" else VALUES["name"] | st.text(alphabet="an_%", min_size=1, max_size=4)
    modifier = draw(st.sampled_from([None, *MODIFIERS]))
    if modifier in ("in", "nin"):
        return {name: {modifier: draw(st.lists(values, max_size=3))}}
    return {name: draw(values) if modifier is None else {modifier: draw(values)}}


def clauses(fields: dict[str, Field]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        constraints(fields),
        lambda inner: st.builds(
            lambda key, members: {key: members}, st.sampled_from(["or", "and"]), st.lists(inner, max_size=3)
        ),
        max_leaves=6,
    )


def check_against_reference(
    models: Models, clause: dict[str, Any], entity: Any, fields: dict[str, Field], records: list[dict[str, Any]]
) -> None:
    """The records a real query finds are the ones the reference says match (when the clause parses)."""
    try:
        normalized = parse_where(clause, fields)
    except UsageError:
        return
    found = models.find({"where": clause}, entity, fields)
    assert found == [record["id"] for record in records if matches(record, normalized)]


@given(clauses(USER))
@settings(max_examples=300, deadline=None)
def test_random_clauses_find_the_users_the_reference_finds(models: Models, clause: dict[str, Any]) -> None:
    check_against_reference(models, clause, models.User, USER, USER_RECORDS)


@given(clauses(PET))
@settings(max_examples=150, deadline=None)
def test_random_clauses_find_the_pets_the_reference_finds(models: Models, clause: dict[str, Any]) -> None:
    check_against_reference(models, clause, models.Pet, PET, PET_RECORDS)
