"""The running accounts: one Tenant per account, kept in step with ``accounts.json``, and the one
place a request crosses from the account that signed it to the account that owns its resource.

Concurrency invariants (all on the event loop): a key is in the verifier's secrets only while its
tenant is in ``by_key`` and started -- a new account's tenant starts before its key is accepted,
a deleted account's key is refused before its tenant stops.  ``refresh`` runs one at a time.

The file is re-read when its identity changes: at once when a request carries an unknown key (so
an account made by ``lamina accounts create`` works on its very first request), and every
``poll_s`` otherwise (so a deleted account's key is refused within that time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lamina.accounts import routing, store
from lamina.accounts.store import Account, AccountError, FileSignature
from lamina.accounts.tenant import Shared, Tenant
from lamina.functions.layers import LayerService

log = logging.getLogger("lamina.accounts")

POLL_S = 0.5


class Accounts:
    def __init__(self, shared: Shared, root: Tenant, secrets: dict[str, str], root_key: str) -> None:
        self._shared = shared
        self.root = root
        self._secrets = secrets  # the verifier's own mapping: a key is accepted iff it is here
        self.by_key: dict[str, Tenant] = {root_key: root}
        self.by_account: dict[str, Tenant] = {root.account_id: root}
        self._keys: dict[str, str] = {root.account_id: root_key}  # account id -> its key
        self._data_dir = shared.settings.data_dir
        self._signature: FileSignature = None
        self._refreshing = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        root.layers.others = self._layers_of
        root.route = self.route

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> list[Tenant]:
        """Start every stored account (the root is started by the platform) and the poller."""
        await self.refresh()
        await asyncio.to_thread(self._remove_orphans)
        self._poller = asyncio.create_task(self._poll(), name="lamina-accounts")
        return list(self.by_account.values())

    async def close(self, on_grace_over: Callable[[], Awaitable[None]]) -> None:
        """Stop the poller and every account, the root's last."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        async with self._refreshing:  # not while an account is being added or removed
            for tenant in sorted(self.by_account.values(), key=lambda t: t is self.root):
                await tenant.close(on_grace_over)

    def tenants(self) -> list[Tenant]:
        return list(self.by_account.values())

    def _layers_of(self, account_id: str) -> LayerService | None:
        tenant = self.by_account.get(account_id)
        return tenant.layers if tenant is not None else None

    def account_of(self, access_key_id: str) -> str | None:
        tenant = self.by_key.get(access_key_id)
        return tenant.account_id if tenant is not None else None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.refresh()
            except Exception:  # a bad file must not stop the poller: the next change is read again
                log.exception("reading the accounts file failed")

    async def refresh(self) -> bool:
        """Apply ``accounts.json`` if it changed since last read; whether it had changed."""
        async with self._refreshing:
            sig = await asyncio.to_thread(store.signature, self._data_dir)
            if sig == self._signature:
                return False
            try:
                wanted = await asyncio.to_thread(store.load, self._data_dir)
            except AccountError as exc:
                log.error("accounts file unreadable; keeping the accounts in use", extra={"error": str(exc)})
                self._signature = sig
                return False
            self._signature = sig
            try:
                await self._apply(wanted)
            except BaseException:
                self._signature = None  # what failed (an account's start) is tried again next time
                raise
            return True

    async def _apply(self, wanted: list[Account]) -> None:
        by_id = {a.account_id: a for a in wanted if self._valid(a)}
        for account_id in [a for a in self.by_account if a != self.root.account_id and a not in by_id]:
            await self._remove(account_id)
        for account_id, acc in by_id.items():
            if account_id not in self.by_account:
                await self._add(acc)

    def _valid(self, acc: Account) -> bool:
        holder = self.by_key.get(acc.access_key_id)
        if acc.account_id == self.root.account_id or (
            holder is not None and holder.account_id != acc.account_id
        ):
            log.error(
                "account ignored: its id or key is the operator's or another account's",
                extra={"account": acc.name, "account_id": acc.account_id},
            )
            return False
        return True

    async def _add(self, acc: Account) -> None:
        tenant = Tenant(
            name=acc.name,
            account_id=acc.account_id,
            home=store.account_dir(self._data_dir, acc.account_id),
            shared=self._shared,
        )
        await tenant.start()
        tenant.layers.others = self._layers_of
        tenant.route = self.route
        self.by_account[acc.account_id] = tenant
        self.by_key[acc.access_key_id] = tenant
        self._keys[acc.account_id] = acc.access_key_id
        self._secrets[acc.access_key_id] = acc.secret_access_key  # accepted from now on
        log.info("account started", extra={"account": acc.name, "account_id": acc.account_id})

    async def _remove(self, account_id: str) -> None:
        tenant = self.by_account.pop(account_id)
        key = self._keys.pop(account_id)
        self._secrets.pop(key, None)  # refused from now on
        self.by_key.pop(key, None)
        await tenant.delete_everything()
        await tenant.close()
        await asyncio.to_thread(shutil.rmtree, tenant.home, True)
        log.info("account deleted", extra={"account": tenant.name, "account_id": account_id})

    def _remove_orphans(self) -> None:
        """Directories of accounts deleted while no server ran go at the next start."""
        parent = self._data_dir / store.ACCOUNTS_DIRNAME
        if not parent.is_dir():
            return
        for child in parent.iterdir():
            if child.name not in self.by_account:
                shutil.rmtree(child, ignore_errors=True)

    # -- requests --------------------------------------------------------------------------------
    async def unknown_key(self) -> None:
        """A request carried a key nobody has: re-read the file (it may be a new account)."""
        await self.refresh()

    def route(self, caller: Tenant, op_name: str, region: str, params: Mapping[str, Any]) -> Tenant:
        """The account whose handler serves this request (see ``routing.route``)."""
        return routing.route(self.by_account, caller, op_name, region, params)
