"""Who is reading: the principals a search is filtered by.

Principals are strings shared by every source: `public`, `domain:<d>`, `group:<source>:<name>`
and `user:<email>`. A named reader holds their own; the org-wide reader (an answer many people
will see) holds only what everyone in the company holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
