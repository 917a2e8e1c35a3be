"""msc4191-shim: translate MSC4191 account-management deep links and discovery metadata."""

__version__ = "0.1.0"
