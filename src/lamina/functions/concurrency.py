"""Reserved concurrency: PutFunctionConcurrency, GetFunctionConcurrency, DeleteFunctionConcurrency.

The rules are AWS's: a reservation belongs to the whole function (a name or an unqualified ARN;
versions and aliases are refused), is 0 or more, and may not leave the account's unreserved
concurrency below its minimum — 100, or the whole account limit when that is smaller (accounts
limited to 10 or 50 get "minimum value of [10]"/"[50]": nothing above 0 can be reserved there).
Reserving 0 stops the function: every invoke is throttled, queued events wait.  A reservation
may not be lower than the function's provisioned concurrency (functions/provisioned.py), which
is carved out of it.

Concurrency invariant: reservations are written under ``account_lock`` (the unreserved total
is account-wide, so two functions' puts must not both pass the check; provisioned concurrency
configs take it too) and then the function's lock (so a put never races DeleteFunction); the
limiter, which the invoke path reads, is updated only after the store committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lamina.errors import AwsError
from lamina.functions.arns import parse_function_ref
from lamina.functions.service import FunctionService
from lamina.invocation.concurrency import ConcurrencyLimiter
from lamina.model.function import LATEST, function_arn
from lamina.store.metadata import MetadataStore

MIN_UNRESERVED = 100

_QUALIFIED = (
    "This operation is permitted on Lambda functions only. Aliases and versions do not support this "
    "operation. Please specify either a function name or an unqualified function ARN."
)


class ConcurrencyService:
    def __init__(
        self,
        *,
        functions: FunctionService,
        store: MetadataStore,
        limiter: ConcurrencyLimiter,
        on_change: Callable[[str, str], None],
    ) -> None:
        self._functions = functions
        self._store = store
        self._limiter = limiter
        self._on_change = on_change  # (region, name) after a reservation changed: queued events retry
        self.account_lock = asyncio.Lock()

    async def load(self) -> None:
        """Reservations into the limiter; rows of functions that are gone (a crash) are dropped."""
        for (region, name), value in (await self._store.call(self._store.load_reserved)).items():
            try:
                self._functions.versions_of(region, name)
            except AwsError:
                await self._store.call(self._store.put_reserved, region, name, None)
                continue
            self._limiter.set_reserved(region, name, value)

    def minimum_unreserved(self) -> int:
        return min(MIN_UNRESERVED, self._limiter.account_limit)

    def limits(self, region: str) -> dict[str, int]:
        """GetAccountSettings' concurrency members of AccountLimit."""
        return {
            "ConcurrentExecutions": self._limiter.account_limit,
            "UnreservedConcurrentExecutions": self._limiter.unreserved(region),
        }

    def reserved(self, region: str, name: str) -> int | None:
        return self._limiter.reserved(region, name)

    def _function(self, region: str, ident: str, *, not_found_qualifier: str | None = None) -> str:
        """The function's name; AWS's errors for a version/alias or a function that does not exist."""
        ref = parse_function_ref(ident)
        if ref.qualifier:
            raise AwsError("InvalidParameterValueException", _QUALIFIED)
        if (ref.account and ref.account != self._functions.account_id) or not self._exists(region, ref.name):
            arn = function_arn(region, self._functions.account_id, ref.name, not_found_qualifier)
            raise AwsError("ResourceNotFoundException", f"Function not found: {arn}")
        return ref.name

    def _exists(self, region: str, name: str) -> bool:
        try:
            self._functions.versions_of(region, name)
        except AwsError:
            return False
        return True

    def get(self, region: str, ident: str) -> int | None:
        return self._limiter.reserved(region, self._function(region, ident))

    async def put(self, region: str, ident: str, value: int) -> int:
        # AWS names $LATEST in this one's not-found message.
        name = self._function(region, ident, not_found_qualifier=LATEST)
        async with self.account_lock, self._functions.lock(region, name):
            name = self._function(region, ident, not_found_qualifier=LATEST)  # deleted meanwhile?
            current = self._limiter.claim(region, name)  # its reservation, else its provisioned
            minimum = self.minimum_unreserved()
            if self._limiter.unreserved(region) + current - value < minimum:
                raise AwsError(
                    "InvalidParameterValueException",
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    f"UnreservedConcurrentExecution below its minimum value of [{minimum}].",
                )
            provisioned = self._limiter.provisioned_total(region, name)
            if value < provisioned:
                raise AwsError(  # AWS's message, its odd spacing included
                    "InvalidParameterValueException",
                    f" ReservedConcurrentExecutions  {value} should not be lower than function's total "
                    f"provisioned concurrency [{provisioned}].",
                )
            await self._store.call(self._store.put_reserved, region, name, value)
            self._limiter.set_reserved(region, name, value)
        self._on_change(region, name)
        return value

    async def delete(self, region: str, ident: str) -> None:
        name = self._function(region, ident)
        async with self.account_lock, self._functions.lock(region, name):
            name = self._function(region, ident)
            if self._limiter.reserved(region, name) is None:
                return  # nothing reserved: AWS answers 204 all the same
            await self._store.call(self._store.put_reserved, region, name, None)
            self._limiter.set_reserved(region, name, None)
        self._on_change(region, name)

    async def forget(self, region: str, name: str, qualifier: str | None) -> None:
        """``FunctionService.on_drop``: a deleted function's reservation goes (its row went with it)."""
        if qualifier is None:
            self._limiter.forget(region, name)
