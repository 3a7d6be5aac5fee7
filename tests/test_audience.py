"""Whose documents a conversation's answer may use: the rules, without a chat platform."""

from __future__ import annotations

import pytest

from workers.delivery.membership import MembershipCache, forget, slack_scope
from workers.delivery.slack import slack_member
from workers.kv import MemoryKeyValue
from workers.rag.audience import Audience
from workers.readers import (
    COMPANY,
    EXTERNAL,
    GUEST,
    MEMBERS,
    NOT_A_READER,
    PERSON,
    PUBLIC_ONLY,
    UNRESOLVED,
    Member,
    for_email,
    members_view,
    public_only,
)

GROUPS = {"dana@acme.com": ["group:confluence:hr"], "sam@acme.com": ["group:confluence:hr"]}


def reader(email: str) -> frozenset[str]:
    return for_email(email, GROUPS.get(email.lower(), []))


def people(*emails: str) -> list[Member]:
    return [Member(f"U{i}", PERSON, (email,)) for i, email in enumerate(emails)]


def view_of(members: list[Member], asker: str = "U0", cap: int = 100) -> tuple[str, str]:
    view = members_view(members, asker, reader, ["acme.com"], cap)
    return view.scope, view.reason


def test_clauses_drop_repeats_and_readers_who_hold_more() -> None:
    small = frozenset({"public", "domain:acme.com"})
    large = small | {"user:dana@acme.com"}
    other = frozenset({"public", "user:lee@acme.com"})
    audience = Audience.everyone_of([large, small, other, small])
    assert audience.clauses() == [small, other]
    assert audience.may_read({"domain:acme.com", "user:lee@acme.com"})
    assert not audience.may_read({"user:dana@acme.com"})
    assert not Audience(()).may_read({"public"}), "nobody reading means nothing may be read"
    assert not Audience.everyone_of([small, set()]).may_read({"public"})


def test_the_members_common_view_keeps_what_they_all_share() -> None:
    view = members_view(people("dana@acme.com", "sam@acme.com"), "U0", reader, ["acme.com"], 100)
    assert view.scope == MEMBERS
    assert view.audience.may_read({"group:confluence:hr"})
    assert not view.audience.may_read({"user:dana@acme.com"})
    assert view.asker == Audience.of(reader("dana@acme.com"))


@pytest.mark.parametrize(
    ("odd_one", "reason"),
    [
        (Member("UG", GUEST, ("pat@partner.example",)), GUEST),
        (Member("UX", EXTERNAL, ("kim@other.example",)), EXTERNAL),
        (Member("UU", UNRESOLVED), UNRESOLVED),
        (Member("UM", PERSON, ("not an email",)), UNRESOLVED),
        (Member("UE", PERSON, ()), UNRESOLVED),
    ],
)
def test_anyone_outside_or_unknown_makes_it_public_only(odd_one: Member, reason: str) -> None:
    members = [*people("dana@acme.com", "sam@acme.com"), odd_one]
    view = members_view(members, "U0", reader, ["acme.com"], 100)
    assert (view.scope, view.reason) == (PUBLIC_ONLY, reason)
    assert view.audience == Audience.of(public_only())
    assert view.asker == Audience.of(reader("dana@acme.com")), "the asker may still be told"


def test_bots_and_deactivated_accounts_are_not_readers() -> None:
    members = [*people("dana@acme.com"), Member("UBOT", NOT_A_READER)]
    assert view_of(members) == (MEMBERS, "")


def test_large_channels_get_company_wide_documents() -> None:
    members = people(*(f"p{i}@acme.com" for i in range(101)))
    assert view_of(members) == (COMPANY, "too_large")
    assert view_of(members[:100]) == (MEMBERS, "")
    assert view_of(members[:3], cap=2) == (COMPANY, "too_large")


def test_a_guest_asker_gets_no_private_add_on() -> None:
    members = [Member("UG", GUEST, ("pat@partner.example",)), *people("dana@acme.com")]
    view = members_view(members, "UG", reader, ["acme.com"], 100)
    assert view.scope == PUBLIC_ONLY and view.asker is None


@pytest.mark.parametrize(
    ("user", "kind"),
    [
        ({"is_bot": True}, NOT_A_READER),
        ({"deleted": True, "profile": {"email": "x@acme.com"}}, NOT_A_READER),
        ({"is_restricted": True, "profile": {"email": "x@acme.com"}}, GUEST),
        ({"is_ultra_restricted": True, "profile": {"email": "x@acme.com"}}, GUEST),
        ({"is_stranger": True, "profile": {"email": "x@other.example"}}, EXTERNAL),
        ({"team_id": "T0OTHER", "profile": {"email": "x@other.example"}}, EXTERNAL),
        (
            {"team_id": "T0OTHER", "enterprise_user": {"id": "W1"}, "profile": {"email": "x@a.co"}},
            PERSON,
        ),
        ({"team_id": "T0001", "profile": {}}, UNRESOLVED),
        ({"team_id": "T0001", "profile": {"email": "x@acme.com"}}, PERSON),
    ],
)
def test_slack_accounts_as_readers(user: dict[str, object], kind: str) -> None:
    assert slack_member("U1", user, "T0001", "UBOT").kind == kind


def test_a_membership_change_forgets_the_cached_members() -> None:
    kv = MemoryKeyValue()
    cache = MembershipCache(kv, ttl_seconds=900)
    scope = slack_scope("T0001", "C1")
    calls: list[int] = []

    def fetch() -> list[Member]:
        calls.append(1)
        return people(*(f"p{i}@acme.com" for i in range(len(calls))))

    assert len(cache.members(scope, fetch)) == 1
    assert len(cache.members(scope, fetch)) == 1 and len(calls) == 1, "cached"
    forget(kv, scope)
    assert len(cache.members(scope, fetch)) == 2 and len(calls) == 2, "read afresh"
    assert len(cache.members(slack_scope("T0001", "C2"), fetch)) == 3, "scopes are separate"


def test_the_split_filter_means_the_same_as_every_reader() -> None:
    everyone = {"public", "domain:acme.com"}
    dana = frozenset({*everyone, "user:dana@acme.com", "group:confluence:hr"})
    sam = frozenset({*everyone, "user:sam@acme.com", "group:confluence:hr"})
    shared, others = Audience.everyone_of([dana, sam]).split()
    assert shared == {*everyone, "group:confluence:hr"}
    assert others == [{"user:dana@acme.com"}, {"user:sam@acme.com"}]
    # Someone who holds only what everyone holds: only shared principals can pass.
    assert Audience.everyone_of([dana, frozenset(everyone)]).split() == (everyone, [])
    assert Audience(()).split() == (frozenset(), [])
