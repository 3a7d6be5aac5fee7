"""Who is reading: the principals a search is filtered by, and whose view a chat answer takes.

Principals are strings shared by every source: `public`, `domain:<d>`, `group:<source>:<name>`
and `user:<email>`. A named reader holds their own; the org-wide reader holds only what
everyone in the company holds. A conversation's answer is read by all its members, so it may
draw only on what every one of them may open (`members_view`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from workers.rag.audience import Audience

PUBLIC = "public"


class ReaderError(ValueError):
    """The reader could not be identified (for example a malformed email)."""


def org_wide(org_domains: Iterable[str]) -> frozenset[str]:
    """Everyone in the company: `public` plus each company domain."""
    return frozenset({PUBLIC, *(f"domain:{d.lower()}" for d in org_domains)})


def public_only() -> frozenset[str]:
    """For answers that people outside the company can read."""
    return frozenset({PUBLIC})


def for_email(email: str, groups: Iterable[str] = ()) -> frozenset[str]:
    """One person: `public`, their email domain, themselves, and the groups sources report."""
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or not domain or "." not in domain:
        raise ReaderError(f"not an email address: {email!r}")
    return frozenset({PUBLIC, f"domain:{domain}", f"user:{email}", *groups})


def one_reader(email: str | None, reader: Callable[[str], frozenset[str]]) -> frozenset[str]:
    """A person asking privately: their principals, or `public` alone when the chat could not
    say who they are (fail closed)."""
    try:
        return reader(email) if email else public_only()
    except ReaderError:
        return public_only()


# What a chat conversation's member is, as far as reading documents goes.
PERSON = "person"  # one of ours, identified by email
GUEST = "guest"  # a guest account (Slack single/multi-channel guest, Teams guest)
EXTERNAL = "external"  # another organisation's (Slack Connect, another Teams tenant)
UNRESOLVED = "unresolved"  # a human we could not identify
NOT_A_READER = "not_a_reader"  # bots, the app itself, deactivated accounts
OUTSIDERS = frozenset({GUEST, EXTERNAL})

# Whose documents an answer was drawn from; the answer's context line says which.
ASKER, MEMBERS, COMPANY, PUBLIC_ONLY = "asker", "members", "company", "public"


@dataclass(frozen=True)
class Member:
    id: str
    kind: str
    emails: tuple[str, ...] = ()  # Teams may give a mail address and a different UPN


@dataclass(frozen=True)
class View:
    """Whose documents an answer may draw on, and why."""

    audience: Audience
    scope: str  # ASKER | MEMBERS | COMPANY | PUBLIC_ONLY
    reason: str = ""  # why it is narrower than the members': a member kind, or "too_large"
    asker: Audience | None = None  # the asker alone, when a private add-on may be sent


def person(emails: Iterable[str], reader: Callable[[str], frozenset[str]]) -> frozenset[str]:
    """One person's principals from every address they are known by (raises ReaderError)."""
    addresses = [e.strip().lower() for e in emails if e and e.strip()]
    if not addresses:
        raise ReaderError("no email address")
    principals = reader(addresses[0])
    return principals | {f"user:{e}" for e in addresses[1:] if "@" in e}


def private_view(principals: frozenset[str]) -> View:
    """A DM or a personal chat: its one reader."""
    return View(Audience.of(principals), ASKER)


def members_view(
    members: Iterable[Member],
    asker_id: str,
    reader: Callable[[str], frozenset[str]],
    org_domains: Iterable[str],
    max_members: int,
) -> View:
    """A conversation many people read: what every human member may open, failing closed.

    Guests, other organisations' people or anyone unidentified -> public documents only; more
    than `max_members` humans -> company-wide documents; otherwise the members' common view.
    """
    humans = [m for m in members if m.kind != NOT_A_READER]
    asker = next((m for m in humans if m.id == asker_id and m.kind == PERSON), None)
    asker_view: Audience | None = None
    if asker is not None:
        try:
            asker_view = Audience.of(person(asker.emails, reader))
        except ReaderError:
            asker_view = None
    for kind in (EXTERNAL, GUEST, UNRESOLVED):
        if any(m.kind == kind for m in humans):
            return View(Audience.of(public_only()), PUBLIC_ONLY, kind, asker_view)
    if not humans:
        return View(Audience.of(public_only()), PUBLIC_ONLY, UNRESOLVED)
    if len(humans) > max_members:
        return View(Audience.of(org_wide(org_domains)), COMPANY, "too_large", asker_view)
    readers: list[frozenset[str]] = []
    for member in humans:
        try:
            readers.append(person(member.emails, reader))
        except ReaderError:
            return View(Audience.of(public_only()), PUBLIC_ONLY, UNRESOLVED, asker_view)
    return View(Audience.everyone_of(readers), MEMBERS, asker=asker_view)
