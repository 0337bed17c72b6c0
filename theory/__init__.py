"""theory: closed forms, seeded Monte Carlo and statistical checks of favor's claims.

Part of the favor distribution. It uses only favor's public API, so every claim is
checked against what users call. ``python -m theory`` runs every claim check.
"""
