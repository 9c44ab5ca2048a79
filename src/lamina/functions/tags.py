"""Tags on functions: TagResource, UntagResource, ListTags, with AWS's rules.

Tags belong to the function (the unqualified ARN), are stored in the ``functions`` row's ``tags``
column, and are written under the function's lock so they never race a delete.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from lamina.errors import AwsError
from lamina.functions.network import NETWORK_TAG, bad_network_message
from lamina.urls.formats import FORMAT_TAG, bad_format_message

if TYPE_CHECKING:  # service imports check_tags from here
    from lamina.functions.service import FunctionService
    from lamina.store.metadata import MetadataStore

MAX_TAGS = 50
MAX_KEY = 128
MAX_VALUE = 256

_FUNCTION_ARN = re.compile(
    r"arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"function:(?P<name>[a-zA-Z0-9\-_]{1,64})(?::(?P<qualifier>[^:]+))?"
)


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterValueException", message)


def check_tags(tags: Mapping[str, str], *, existing: Mapping[str, str] | None = None) -> None:
    """AWS's limits on keys, values and the count after merging into ``existing``."""
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_KEY:
            raise _invalid(f"Tag key must be between 1 and {MAX_KEY} characters long: {key!r}")
        if len(value) > MAX_VALUE:
            raise _invalid(f"Tag value must be no longer than {MAX_VALUE} characters: key {key!r}")
        if key.lower().startswith("aws:"):
            raise _invalid("Tag keys that start with 'aws:' are reserved for AWS use.")
        if key == FORMAT_TAG and (problem := bad_format_message(value)) is not None:
            raise _invalid(problem)  # lamina's own setting (docs/urls.md)
        if key == NETWORK_TAG and (problem := bad_network_message(value)) is not None:
            raise _invalid(problem)  # lamina's own setting (docs/security.md)
    if len({**(existing or {}), **tags}) > MAX_TAGS:
        raise _invalid(f"Number of tags exceeds resource tag limit of {MAX_TAGS}.")


class TagService:
    def __init__(
        self,
        *,
        functions: FunctionService,
        store: MetadataStore,
        on_change: Sequence[Callable[[str, str, Mapping[str, str]], Awaitable[None] | None]] = (),
    ) -> None:
        self._functions = functions
        self._store = store
        # (region, name, tags) after every committed change, under the function's lock; an async
        # hook is awaited, so the change has taken effect when TagResource answers
        self._on_change = list(on_change)

    def _function(self, region: str, resource: str) -> str:
        """The function name an ARN designates; AWS's errors for other resources and qualifiers."""
        m = _FUNCTION_ARN.fullmatch(resource)
        if m is None:
            # code-signing configs, event source mappings...: lamina has none of them.
            raise AwsError("ResourceNotFoundException", f"Resource not found: {resource}")
        if m["qualifier"]:
            raise _invalid(
                "Tags on function aliases and versions are not supported. Please specify a function ARN."
            )
        name = m["name"]
        if m["region"] != region or m["account"] != self._functions.account_id:
            raise AwsError("ResourceNotFoundException", f"Function not found: {resource}")
        self._functions.versions_of(region, name)  # ResourceNotFoundException when it does not exist
        return name

    async def list(self, region: str, resource: str) -> dict[str, str]:
        name = self._function(region, resource)
        return await self._store.call(self._store.get_tags, region, name)

    async def tag(self, region: str, resource: str, tags: Mapping[str, str]) -> None:
        name = self._function(region, resource)
        async with self._functions.lock(region, name):
            name = self._function(region, resource)  # deleted while we waited?
            current = await self._store.call(self._store.get_tags, region, name)
            check_tags(tags, existing=current)
            merged = {**current, **tags}
            await self._store.call(self._store.put_tags, region, name, merged)
            await self._changed(region, name, merged)

    async def untag(self, region: str, resource: str, keys: Sequence[str]) -> None:
        name = self._function(region, resource)
        async with self._functions.lock(region, name):
            name = self._function(region, resource)
            current = await self._store.call(self._store.get_tags, region, name)
            remaining = {k: v for k, v in current.items() if k not in set(keys)}
            if remaining != current:
                await self._store.call(self._store.put_tags, region, name, remaining)
                await self._changed(region, name, remaining)

    async def _changed(self, region: str, name: str, tags: Mapping[str, str]) -> None:
        for hook in self._on_change:
            result = hook(region, name, tags)
            if inspect.isawaitable(result):
                await result
