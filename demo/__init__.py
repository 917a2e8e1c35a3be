"""The demo: an emulated legacy account portal, and the shim in front of it on localhost.

Not part of the product: the wheel and the production image leave this package out. `make demo`
runs `python -m demo` from the repository; the tests use the portal as the legacy upstream.
"""
