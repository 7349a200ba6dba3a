"""Webhooks: Pusher's notifications of occupancy, presence, client events and cache misses,
delivered to each app's endpoints through the queue.

The way out, in order:

1. The adapter reports cluster-wide transitions (``channel_occupied``/``vacated``,
   ``member_added``/``removed``) on exactly one node per channel; the WebSocket handler
   reports ``client_event``, ``cache_miss`` and ``subscription_count``.
2. :class:`WebhookDispatcher` holds ``channel_vacated`` and ``member_removed`` 3 s (dropped,
   with the matching ``channel_occupied``/``member_added``, when the channel or user is back
   in time), batches each app's events (``webhooks.batching``), and queues one job per batch
   and endpoint, holding only the events that endpoint's ``event_types`` and ``filter`` want.
3. :class:`WebhookDelivery` consumes the queue on every node: it stamps the body's
   ``time_ms`` with the time of sending, signs it with the app's current secret, POSTs it
   (or invokes the Lambda), and answers the queue with retry (network errors, 5xx, 408,
   409, 425, 429; exponential back-off within the endpoint's retry window) or dead letter
   (any other status, or the window spent).

A job on :data:`QUEUE_NAME` is ``{"app_id": str, "target": <the Webhook config of the
endpoint, JSON>, "body": "<the JSON body, {time_ms, events}>", "events": <count>}``.
No secret is stored in it: the signature is made when it is sent.
"""

from __future__ import annotations

QUEUE_NAME = "webhooks"
"""The queue every node puts webhook jobs on and consumes them from."""

__all__ = ["QUEUE_NAME"]
