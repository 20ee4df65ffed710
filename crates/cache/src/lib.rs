//! Cache-aside helpers over a zedis cluster (or any Redis): `get_or_load` with TTL jitter,
//! probabilistic early recompute (XFetch), a cross-process single-flight, negative caching and
//! invalidation, plus an optional in-process near cache kept coherent by invalidation messages.
