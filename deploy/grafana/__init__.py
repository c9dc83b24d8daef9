"""Grafana for callscope: provisioning files, dashboards as code (dashboards.py -> dashboards/*.json)."""
