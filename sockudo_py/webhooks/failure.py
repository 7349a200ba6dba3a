"""How a delivery attempt failed, as every webhook target reports it."""

from __future__ import annotations


class DeliveryFailed(Exception):
    """One attempt to deliver a webhook body failed.

    ``retryable``: whether a later attempt may succeed (network error, timeout, 5xx, 408,
    409, 425, 429, a throttled Lambda) or not (any other refusal: the job goes to the dead
    letters at once). ``retry_after``: seconds the target asked us to wait (``Retry-After``),
    if it did.
    """

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
