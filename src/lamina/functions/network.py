"""A function's network policy: lamina's setting, the function tag ``lamina:network``.

Lambda functions reach the network by default, and so do lamina's.  AWS has no switch for "no
network at all" (the nearest is a VpcConfig whose subnets have no route out, which lamina only
stores and echoes: there is no VPC here), so a function opts out with the tag
``lamina:network`` = ``none``: its environments get a network namespace with only their own
loopback (``lamina.execution.netns``, docs/security.md).  ``default`` (or no tag) is the host's
network.

A tag belongs to the function, not to one version, so the policy applies to every version and
alias of it.  It is read into each environment spec (the sync path does no I/O: this registry
is loaded at start and kept current by CreateFunction's ``Tags`` and by TagResource /
UntagResource); a change replaces the function's environments, warm and provisioned, as AWS
replaces them on a configuration change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lamina.execution.netns import NETWORK_DEFAULT, NETWORK_NONE

NETWORK_TAG = "lamina:network"
VALUES = (NETWORK_DEFAULT, NETWORK_NONE)


def bad_network_message(value: str) -> str | None:
    """Why ``value`` is not a valid ``lamina:network`` tag value, or None."""
    if value in VALUES:
        return None
    return f"Tag {NETWORK_TAG} must be one of {', '.join(VALUES)}: {value!r}"


def network_of(tags: Mapping[str, str]) -> str:
    return NETWORK_NONE if tags.get(NETWORK_TAG) == NETWORK_NONE else NETWORK_DEFAULT


class NetworkPolicies:
    """(region, function name) -> its network policy, for the functions that have no network."""

    def __init__(self) -> None:
        self._none: set[tuple[str, str]] = set()

    def load(self, tagged: Iterable[tuple[str, str, Mapping[str, str]]]) -> None:
        for region, name, tags in tagged:
            self.set(region, name, tags)

    def of(self, region: str, name: str) -> str:
        return NETWORK_NONE if (region, name) in self._none else NETWORK_DEFAULT

    def set(self, region: str, name: str, tags: Mapping[str, str]) -> bool:
        """The function's tags now; True if its policy changed."""
        key = (region, name)
        before = key in self._none
        if network_of(tags) == NETWORK_NONE:
            self._none.add(key)
        else:
            self._none.discard(key)
        return before != (key in self._none)

    def forget(self, region: str, name: str) -> None:
        self._none.discard((region, name))
