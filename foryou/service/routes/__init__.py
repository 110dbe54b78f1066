"""HTTP routers, one module per area. `foryou.service.app` mounts every router in `ROUTERS`;
a new area (e.g. experiments) adds a module here and one entry to the list."""

from __future__ import annotations

from foryou.experiments.http import router as experiments_router
from foryou.service.routes import ops, reads, writes

ROUTERS = (reads.router, writes.router, ops.router, experiments_router)
