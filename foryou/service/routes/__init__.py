"""HTTP routers, one module per area. `foryou.service.app` mounts every router in `ROUTERS`;
a new area adds a module here and one entry to the list."""

from __future__ import annotations

from foryou.service.routes import experiments, models, ops, reads, writes

ROUTERS = (reads.router, writes.router, ops.router, experiments.router, models.router)
