"""Built-in step types run by the worker itself, outside the sandbox."""

from worker.steps.guard import IPAddress, address_refusal
from worker.steps.http import METHODS, HttpClient, HttpRequestSpec, HttpStepError

__all__ = [
    "METHODS",
    "HttpClient",
    "HttpRequestSpec",
    "HttpStepError",
    "IPAddress",
    "address_refusal",
]
