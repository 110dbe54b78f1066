"""The HTTP service (`foryou serve`): FastAPI app, durable event store, cache, metrics, traces."""
