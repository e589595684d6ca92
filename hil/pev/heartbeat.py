"""The heartbeat phase of a simulated session: DERStatus every 1 s (§4.8.1.1) while watching
``DefaultDERControl.opModEnergize`` and the DERControlList, and sleep/wake (§4.8.3).

The watcher either follows Notifications (the profile subscribes to both and the EVSE
accepted the Subscriptions) or polls both every 1 s (§4.1.4); a refused subscription, or one
the EVSE ends, falls back to polling. A control changed mid-session (a superseding
DERControl) is answered and followed, unless the profile ignores changes. A silent profile
stops posting after N heartbeats but keeps watching, so that the revocation shows in the
energize history. Sleeping posts inverterStatus 2; waking re-reads every control, answers new
ones, then posts 0 again. Time is scheduled on a fixed 1 s grid from the phase's start, so
heartbeats do not drift with request latency.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING

from firmware.logs import log_event
from firmware.sep2.control import DefaultDERControl
from firmware.sep2.der import DERSettings
from firmware.sep2.pubsub import NOTIFICATION_DEFAULT, Notification
from hil.pev import documents
from hil.pev.errors import PevError
from hil.pev.listener import NotificationListener

if TYPE_CHECKING:
    from hil.pev.client import PevClient

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0  # §4.8.1.1
POLL_S = 1.0  # §4.1.4: the profile's poll rate


async def sleep_until(loop_time: float) -> None:
    await asyncio.sleep(max(0.0, loop_time - asyncio.get_running_loop().time()))


class HeartbeatPhase:
    def __init__(
        self, client: PevClient, site: DERSettings, context: ssl.SSLContext, notify_host: str
    ) -> None:
        self.client = client
        self.site = site
        self.context = context
        self.notify_host = notify_host
        self.subscription: str | None = None  # the Location of our Subscription
        self._listener: NotificationListener | None = None
        self._subscribed = False
        self._refresh = False
        self._controls_changed = False
        self._nudge = asyncio.Event()

    async def start_watching(self) -> None:
        """Subscribe to DefaultDERControl if the profile does; otherwise (or if that fails) poll."""
        client, log = self.client, self.client.log
        if not client.profile.subscribe:
            log.watch = "polling"
            return
        if not client.links.subscriptions:
            log.watch = "polling (no SubscriptionListLink)"
            return
        listener = NotificationListener(
            self.context, self.notify_host, log.evse_lfdi or "", self._on_notification
        )
        try:
            uri = await listener.start()
        except OSError as err:
            log.watch = f"polling (cannot listen on {self.notify_host}: {err.strerror or err})"
            return
        self._listener = listener
        body = documents.subscription(client.links.default_control, uri)
        try:
            self.subscription = await client.http.post(
                client.links.subscriptions, body, "Subscription", expect=(201,)
            )
        except PevError as err:
            log.watch = f"polling (subscription refused: {err})"
            return
        if client.profile.follows_changes:
            body = documents.subscription(client.links.control_list, uri)
            try:
                await client.http.post(client.links.subscriptions, body,
                                       "Subscription (DERControlList)", expect=(201,))  # fmt: skip
            except PevError as err:
                log.watch = f"polling (subscription refused: {err})"
                return
        log.watch = "notifications"
        self._subscribed = True

    def _on_notification(self, notification: Notification) -> None:
        client = self.client
        if notification.subscribed_resource == client.links.control_list:
            self._controls_changed = True
            self._nudge.set()
            return
        if notification.subscribed_resource != client.links.default_control:
            log_event(
                logger,
                "pev.notification.ignored",
                logging.WARNING,
                resource=notification.subscribed_resource,
            )
            return
        if notification.status != NOTIFICATION_DEFAULT:
            client.log.watch = f"polling (subscription ended: status {notification.status})"
            self._subscribed = False
        elif isinstance(notification.resource, DefaultDERControl):
            energize = notification.resource.der_control_base.op_mod_energize
            client.log.saw_energize(energize, "notification")
            return
        else:
            self._refresh = True  # no resource in it: read it ourselves
        self._nudge.set()

    async def run(self, duration_s: float | None, stop: asyncio.Event) -> None:
        """Heartbeat and watch until ``duration_s`` passes or ``stop`` is set; a failure of
        either raises its PevError here."""
        tasks = [asyncio.create_task(self._heartbeats()), asyncio.create_task(self._watch())]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(
                [*tasks, stopper], timeout=duration_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (*tasks, stopper):
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
        for task in done:
            if task is not stopper:
                task.result()

    async def close(self) -> None:
        # No DELETE of the subscription: an unplugged vehicle sends nothing (§4.5, step 10).
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None

    def asleep_at(self, elapsed_s: float) -> bool:
        sleep = self.client.profile.sleep
        return sleep is not None and sleep.after_s <= elapsed_s < sleep.after_s + sleep.for_s

    async def _heartbeats(self) -> None:
        client, log = self.client, self.client.log
        loop = asyncio.get_running_loop()
        start = loop.time()
        asleep, since, beat = False, client.now(), 0
        limit = client.profile.heartbeats
        while True:
            await sleep_until(start + beat * HEARTBEAT_S)
            beat += 1
            if self.asleep_at(loop.time() - start) != asleep:
                asleep, since = not asleep, client.now()
                log_event(
                    logger, "pev.sleep" if asleep else "pev.wake", profile=client.profile.name
                )
                if not asleep:
                    await client.read_controls("wake")  # §4.8.3: re-read all, then post 0
            if client.silent or (limit is not None and log.heartbeats_sent >= limit):
                continue  # silent: still plugged in, still watching, saying nothing
            status = documents.der_status(client.profile, asleep, since, client.now())
            name = "heartbeat DERStatus (asleep)" if asleep else "heartbeat DERStatus"
            await client.http.post(client.links.der_status, status, name, routine=True)
            log.heartbeats_sent += 1

    async def _watch(self) -> None:
        client = self.client
        while self._subscribed:
            await self._nudge.wait()
            self._nudge.clear()
            if self._subscribed and self._refresh:
                self._refresh = False
                await client.read_default_control("notification", routine=True)
            if self._subscribed and self._controls_changed:
                self._controls_changed = False
                await client.follow_controls("notification")
        loop = asyncio.get_running_loop()
        start, poll = loop.time(), 1
        while True:
            await sleep_until(start + poll * POLL_S)
            poll += 1
            await client.read_default_control("poll", routine=True)
            if client.profile.follows_changes:
                await client.follow_controls("poll", routine=True)
