"""The For You product: concrete components and the pipeline that lists them (DESIGN §4)."""
