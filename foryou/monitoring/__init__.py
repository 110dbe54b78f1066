"""Monitoring: feature and prediction drift (PSI, KS) with alerts, exposure / bias monitors, and the
feedback collector that turns served impressions and engagements into training data. Gauges go to
prometheus-client's default registry (the service's /metrics exposes them)."""
