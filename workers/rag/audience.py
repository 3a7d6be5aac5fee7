"""Who an answer is for, as the index filters it: one or more readers, each a set of principals.

A passage may be used only if *every* reader may open it: for each reader, the passage's ACL
shares at least one principal with theirs. A DM has one reader; a channel answer has every
human member of the channel. Both index backends turn `clauses()` into one condition per
distinct reader (Qdrant's `must` of `match any`), so the rule is evaluated inside the engine.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Audience:
    readers: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, principals: Collection[str]) -> Audience:
        """One reader."""
        return cls((frozenset(principals),))

    @classmethod
    def everyone_of(cls, readers: Iterable[Collection[str]]) -> Audience:
        """Several readers; the passages all of them may open."""
        return cls(tuple(frozenset(reader) for reader in readers))

    def clauses(self) -> list[frozenset[str]]:
        """The fewest reader conditions with the same meaning, in a stable order.

        Readers with the same principals are one condition; a reader holding everything another
        holds (and more) adds nothing, since any passage the smaller one may open, so may they.
        An empty result, or an empty clause, means nothing may be read.
        """
        distinct = sorted(set(self.readers), key=lambda r: (len(r), sorted(r)))
        kept: list[frozenset[str]] = []
        for reader in distinct:
            if not any(smaller <= reader for smaller in kept):
                kept.append(reader)
        return kept

    @property
    def reads_nothing(self) -> bool:
        clauses = self.clauses()
        return not clauses or any(not clause for clause in clauses)

    def may_read(self, acl: Collection[str]) -> bool:
        """The same rule outside the index: every reader shares a principal with `acl`."""
        allowed = frozenset(acl)
        return not self.reads_nothing and all(reader & allowed for reader in self.clauses())
