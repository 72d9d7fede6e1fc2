"""Cross-cutting suites: what no one module's test file can show.

The proxy end to end:

- `test_browser.py`, `test_browser_modes.py`: a real Chromium on the widget page
- `test_anonymous.py`: visitors who are not signed in
- `test_caching.py`: the caches across requests, processes and topologies
- `test_isolation.py`: no user ever sees another's token or page
- `test_hostile.py`: hostile input at every door
- `test_leaks.py`: no secret in any response or log record
- `test_shared_limits.py`: rate limits shared between processes
- `test_security.py`: the security model (origins, the token endpoint, identity
  headers, rate limits) through the whole proxy
- `test_operations.py`: what an operator relies on across processes (serve's JSON lines,
  metrics across workers, the nginx and oauth2-proxy samples of docs/operations.md)
- `test_upstream_faults.py`: every upstream fault against a real server
- `test_redis_failover.py`: Redis going away and coming back, in every topology
- `test_key_rotation.py`: rotating the vendor's key without a dropped request
- `test_revocation.py`: `widget-proxy forget` across two processes, in every topology

The project itself:

- `test_architecture.py`: which module may import which
- `test_lock.py`: the requirements lock
- `test_packaging.py`: the wheel and the sdist
- `test_container.py`: the Dockerfile (hadolint, the lock, built and run with podman
  when CONTAINER_TESTS=1)
- `test_kubernetes.py`: deploy/kubernetes/ against the API's schemas and the app
- `test_compose.py`: deploy/compose.yaml, and its nginx.conf in front of two proxies
- `test_bench.py`: the benchmark's smoke run
- `test_layout.py`: tests mirror the package (docs/testing.md)
- `test_docs.py`: the README and the docs site: short, built strictly, and the blocks a
  merchant copies (`.env`, FastAPI app, nginx, stand-in and check) run as written
"""
