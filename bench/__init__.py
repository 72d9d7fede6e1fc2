"""`python -m bench`: the proxy measured side by side with its limit and the naive recipe.

Everything runs on one machine over loopback: the stand-in vendor, the proxy and the
comparison apps each in their own uvicorn process, and `wrk` (or a built-in asyncio
generator) as the load. See BENCHMARKS.md.
"""
