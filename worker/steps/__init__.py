"""Built-in step types run by the worker itself, outside the sandbox."""

from worker.steps.http import (
    METHODS,
    HttpClient,
    HttpRequestSpec,
    HttpStepError,
    IPAddress,
    address_refusal,
)

__all__ = [
    "METHODS",
    "HttpClient",
    "HttpRequestSpec",
    "HttpStepError",
    "IPAddress",
    "address_refusal",
]
