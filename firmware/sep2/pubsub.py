"""2030.5 publish/subscribe: Subscription, SubscriptionList and Notification.

A Notification carries the changed resource in its ``Resource`` element typed by ``xsi:type``
(e.g. ``xsi:type="DERControlList"``); on parse the type must be one of the resources in
``firmware.sep2.registry``. A Subscription's ``Condition`` (thresholds on a Reading value) is
schema-valid and parsed, but none of the resources a vehicle may subscribe to is a Reading: the
server notifies on every change and does not keep the Condition (docs/v2g-ac-profile.md,
"Resources the EVSE serves").
"""

# ruff: noqa: RUF009  # opt() and many() return dataclasses.field(...) specifiers

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from firmware.sep2.base import List, Resource
from firmware.sep2.fields import INT48, STR16, UINT8, UINT32, URI, AnyResource, many, opt, req
from firmware.sep2.model import Sep2Model

ENCODING_XML = 0
NOTIFICATION_DEFAULT = 0
NOTIFICATION_CANCELLED = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition(Sep2Model):
    """Condition: notify only when attribute 0 (a Reading's value) leaves the thresholds."""

    attribute_identifier: int = field(metadata=req("attributeIdentifier", UINT8))
    lower_threshold: int = field(metadata=req("lowerThreshold", INT48))
    upper_threshold: int = field(metadata=req("upperThreshold", INT48))


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription(Resource):
    """Subscription: notify ``notification_uri`` (absolute) when ``subscribed_resource`` changes."""

    TAG: ClassVar[str] = "Subscription"

    subscribed_resource: str = field(metadata=req("subscribedResource", URI))
    condition: Condition | None = opt("Condition", Condition)
    encoding: int = field(metadata=req("encoding", UINT8))
    level: str = field(metadata=req("level", STR16))
    limit: int = field(metadata=req("limit", UINT32))
    notification_uri: str = field(metadata=req("notificationURI", URI))


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionList(List):
    """SubscriptionList."""

    TAG: ClassVar[str] = "SubscriptionList"

    poll_rate: int | None = opt("pollRate", UINT32, attr=True)
    subscriptions: tuple[Subscription, ...] = many("Subscription", Subscription)


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification(Resource):
    """Notification: what changed (``resource``, any registered resource type) and why."""

    TAG: ClassVar[str] = "Notification"

    subscribed_resource: str = field(metadata=req("subscribedResource", URI))
    new_resource_uri: str | None = opt("newResourceURI", URI)
    resource: Resource | None = opt("Resource", AnyResource)
    status: int = field(metadata=req("status", UINT8))
    subscription_uri: str = field(metadata=req("subscriptionURI", URI))
