"""Who an answer is for, as the index filters it: one or more readers, each a set of principals.

A passage may be used only if *every* reader may open it: for each reader, the passage's ACL
shares at least one principal with theirs. A DM has one reader; a channel answer has every
human member of the channel. Both index backends turn `split()` into one Qdrant filter, so the
rule is evaluated inside the engine: a passage naming a principal all readers hold (`public`,
the company's domain) passes at once; any other must match each reader's remaining principals.
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

    def split(self) -> tuple[frozenset[str], list[frozenset[str]]]:
        """(principals every reader holds, each reader's others). A passage is readable iff its
        ACL names a shared principal, or names one of every reader's others. When a reader
        holds nothing but shared principals, the others are moot and come back empty."""
        clauses = self.clauses()
        if not clauses:
            return frozenset(), []
        shared = frozenset.intersection(*clauses)
        others = [clause - shared for clause in clauses]
        return shared, ([] if any(not rest for rest in others) else others)

    @property
    def reads_nothing(self) -> bool:
        clauses = self.clauses()
        return not clauses or any(not clause for clause in clauses)

    def may_read(self, acl: Collection[str]) -> bool:
        """The same rule outside the index: every reader shares a principal with `acl`."""
        allowed = frozenset(acl)
        return not self.reads_nothing and all(reader & allowed for reader in self.clauses())
