"""How hard a controller retries an API action that failed: a policy its operator sets.

Pure. The shape of Temporal's RetryPolicy and Argo's ``retryStrategy`` (initial interval, backoff
factor, maximum interval, maximum attempts), applied by the work queue to each object's failures.
Errors that retrying cannot mend (a 400 or 422: what was sent is wrong) are never retried; they
end on the object and wait for a change to it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """The defaults are the work queue's behaviour before the policy could be set: 0.5 s, doubled
    each time, at most 60 s apart, 10 attempts in all."""

    initial_interval: float = 0.5
    factor: float = 2.0
    max_interval: float = 60.0
    max_attempts: int = 10

    def __post_init__(self) -> None:
        if self.initial_interval <= 0:
            raise ValueError(f"the initial retry interval must be above 0 seconds, not {self.initial_interval}")
        if self.factor < 1:
            raise ValueError(f"the retry backoff factor must be at least 1, not {self.factor}")
        if self.max_interval < self.initial_interval:
            raise ValueError(
                f"the maximum retry interval ({self.max_interval}s) must be at least the initial one "
                f"({self.initial_interval}s)"
            )
        if self.max_attempts < 1:
            raise ValueError(f"maximum attempts must be at least 1, not {self.max_attempts}")

    def describe(self) -> str:
        """One word for the start-up line: ``initial:0.5s,factor:2,max:60s,attempts:10``."""
        return (
            f"initial:{self.initial_interval:g}s,factor:{self.factor:g},max:{self.max_interval:g}s,"
            f"attempts:{self.max_attempts}"
        )

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        return float(min(self.max_interval, self.initial_interval * self.factor ** max(0, failures - 1)))

    def exhausted(self, failures: int) -> bool:
        """Whether ``failures`` attempts in a row have failed and none may follow."""
        return failures >= self.max_attempts


class RetryLater(Exception):  # a request to the work queue, not an error of the code
    """Raised by a reconcile that has reported a failure on the object (a condition) which may mend
    by itself (a permission granted, an API installed): the work queue tries again as its policy
    says, and when the attempts run out, gives up with ``reason``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
