"""The server layer: gateway, OTLP receiver and dashboard.

Servers sit above ``store/`` and ``analyze/``: they record through the same ``Call``
records and spool as :mod:`ctxbudget.track`, price through the same ``PriceBook`` and
read through the same analytics queries. Nothing here is imported by ``import
ctxbudget``; each server's dependencies (an ASGI framework and server) are an extra.
"""
