"""Known differences between Sundial's event attributes and the reference server's, found by
test_same_attributes and not yet fixed in Sundial.

These are real divergences, not normalisation: each is listed with the exact field and values,
and the scenarios it shows up in. A scenario with known divergences is marked
xfail(strict=True, raises=KnownDivergences): it xfails only if every difference it shows is
listed here; an unlisted difference is a plain failure, and so is a listed divergence that no
longer occurs (delete its entry once Sundial is fixed). With SUNDIAL_TARGET=reference nothing
is expected to differ, so no marker applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

ANY = object()  # matches any value (e.g. the SDK build id, which changes with the test code)


class KnownDivergences(AssertionError):
    """Raised when a scenario shows exactly its known divergences (the expected xfail)."""


@dataclass(frozen=True)
class Field:
    """One differing field: `path` is a regex for the full dotted path (list indices
    included), `reference` and `sundial` the values each side has
    (`history_attributes.ABSENT` = not written)."""
    path: str
    reference: Any
    sundial: Any

    def matches(self, path: str, reference: Any, sundial: Any) -> bool:
        return (re.fullmatch(self.path, path) is not None
                and self.reference in (ANY, reference) and self.sundial in (ANY, sundial))


@dataclass(frozen=True)
class Divergence:
    """One behaviour of Sundial that differs from the reference, as the fields it shows up in,
    and the attribute scenarios (or ALL) where it does."""
    summary: str
    fields: Tuple[Field, ...]
    scenarios: Tuple[str, ...]

    def matches(self, path: str, reference: Any, sundial: Any) -> bool:
        return any(f.matches(path, reference, sundial) for f in self.fields)


# In place of a scenario list: every scenario of the attribute subset (these divergences show
# up as soon as a workflow starts and completes a workflow task).
ALL = ("*",)

KNOWN_DIVERGENCES: Dict[str, Divergence] = {
    # None known: the eight found when this comparison was written are fixed.
}


def known_for(scenario: str) -> Dict[str, Divergence]:
    return {name: d for name, d in KNOWN_DIVERGENCES.items()
            if scenario in d.scenarios or d.scenarios == ALL}


def xfail_reason(scenario: str) -> str:
    """E.g. "Sundial diverges: worker_version_stamp, zero_durations_omitted (see
    known_divergences.py)"; empty if none is known."""
    names = list(known_for(scenario))
    return f"Sundial diverges: {', '.join(names)} (see known_divergences.py)" if names else ""


def classify(scenario: str, differences: List[Tuple[str, str, Any, Any]]
             ) -> Tuple[List[Tuple[str, str, Any, Any]], List[str]]:
    """(differences no known divergence explains, names of known divergences that did not
    occur)."""
    known = known_for(scenario)
    unexplained = [d for d in differences
                   if not any(k.matches(*d[1:]) for k in known.values())]
    stale = [name for name, k in known.items()
             if not any(k.matches(*d[1:]) for d in differences)]
    return unexplained, stale
