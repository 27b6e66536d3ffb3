"""Every error Conveyor raises on purpose derives from :class:`ConveyorError`.

Errors about the caller's input also derive from the matching built-in
(``ValueError`` or ``TypeError``), so ``except ValueError`` keeps working in code
that does not know Conveyor. Each message says what to do next.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class of every error Conveyor raises on purpose."""


class ConfigurationError(ConveyorError, ValueError):
    """A setting (argument or environment variable) is missing or malformed."""


class InvalidArgument(ConveyorError, ValueError):
    """An argument has the wrong value: nothing was written."""


class InvalidQueueName(InvalidArgument):
    """A queue name is empty, too long or uses characters outside ``[A-Za-z0-9_.:/-]``."""


class ConnectionRejected(ConfigurationError):
    """PostgreSQL answered and refused this client for good: the database or role
    does not exist, the password is wrong or missing, or ``pg_hba.conf`` has no
    entry for it. Raised at once by ``start()``: waiting will not help, the
    database URL or the server's access rules must change."""


class InvalidSchemaName(ConfigurationError):
    """A schema name is not a plain lower-case PostgreSQL identifier."""


class InvalidPayload(InvalidArgument):
    """Job data or output cannot be stored as JSON."""


class PayloadTooLarge(InvalidPayload):
    """Job data or output is larger than the configured ``max_payload_bytes``."""


class InvalidOption(InvalidArgument):
    """A job or queue option has a value it cannot take (a negative delay, say)."""


class InvalidSchedule(InvalidOption):
    """A cron expression or time zone that cannot be used: nothing was written."""


class UnknownOption(ConveyorError, TypeError):
    """An option name that Conveyor does not know (often a typo)."""


class InvalidPolicy(InvalidArgument):
    """A queue policy outside ``standard, short, singleton, stately, exclusive``."""


class QueueNotFound(ConveyorError, LookupError):
    """The named queue does not exist."""


class ScheduleNotFound(ConveyorError, LookupError):
    """The named schedule does not exist (``get_schedules`` lists them)."""


class JobNotFound(ConveyorError, LookupError):
    """A job named by id does not exist (a dependency of a flow, a job to wait for)."""


class InvalidFlow(InvalidArgument):
    """A flow that cannot run: duplicate or unknown refs, or a cycle. Nothing was sent."""


class WaitTimeout(ConveyorError, TimeoutError):
    """``wait_for`` gave up: the job had not finished within the timeout."""


class QueueConflict(ConveyorError):
    """A queue cannot be created or changed that way (it exists with other settings,
    its policy cannot change, or another queue uses it as its dead-letter queue)."""


class PolicyViolation(ConveyorError):
    """An admin action would break the queue's policy (for instance resuming a job
    into a ``short`` queue that already holds a queued job for the same key)."""


class NotStarted(ConveyorError, RuntimeError):
    """The client was used before ``start()`` (or outside its ``with`` block)."""


class MigrationError(ConveyorError):
    """The database schema cannot be brought to the version this code needs."""


class SchemaTooNew(MigrationError):
    """The database schema was migrated by a newer Conveyor than this one."""


class ConnectionLost(ConveyorError, ConnectionError):
    """The connection to PostgreSQL failed or dropped during a call.

    The call may or may not have taken effect. The pool replaces broken
    connections by itself, so the next call can simply be tried again.
    """


class DatabaseError(ConveyorError):
    """PostgreSQL refused a statement for a reason Conveyor did not expect."""


# --- raised by handlers, read by workers ------------------------------------------------


class RetryAfter(ConveyorError):
    """Raise from a handler to retry the job after exactly ``seconds``, without backoff
    (a rate limit's "wait 300 s", Telegram's FLOOD_WAIT). The attempt still counts
    against ``retry_limit``.

    Example::

        except FloodWait as exc:
            raise RetryAfter(exc.seconds) from exc
    """

    def __init__(self, seconds: float, message: str | None = None) -> None:
        super().__init__(message or f"retry after {seconds:g} s")
        self.seconds = seconds


class PauseGroup(ConveyorError):
    """Raise from a handler to pause the job's group key for ``seconds``: no job of
    that key is claimed until then, across all workers. The job goes back to its
    queue without counting an attempt and runs after the pause (Telegram's
    FLOOD_WAIT for one chat: every message to it waits).

    Example::

        except FloodWait as exc:
            raise PauseGroup(exc.seconds) from exc
    """

    def __init__(self, seconds: float, message: str | None = None) -> None:
        super().__init__(message or f"pause the group for {seconds:g} s")
        self.seconds = seconds


class PauseQueue(PauseGroup):
    """Raise from a handler to pause the job's whole queue for ``seconds``; the job
    goes back to the queue without counting an attempt (an API's global limit)."""

    def __init__(self, seconds: float, message: str | None = None) -> None:
        super().__init__(seconds, message or f"pause the queue for {seconds:g} s")


class NonRetryableError(ConveyorError):
    """Raise from a handler (or subclass it) to fail the job at once, whatever
    attempts remain: the input is wrong and trying again cannot help."""


class JobTimeout(ConveyorError, TimeoutError):
    """Stored as the error of an attempt that ran past its ``expire_in``."""


class LeaseExpired(ConveyorError):
    """Stored as the error of an attempt whose worker stopped renewing its lease
    (killed, or cut off from the database); the job was rescued."""
