"""Prometheus metrics, served on their own port (``metrics.port``, default 9601)."""

from .prometheus import AppMetrics, Metrics

__all__ = ["AppMetrics", "Metrics"]
