"""The catalogue: every statement Conveyor runs, declared once.

A declaration names the statement's file (``sql/<name>.sql``), its parameters, what
a step running it returns (``fetch``: the row count, one row or all rows) and
whether its rows come as tuples or as dicts. Plans run a statement by naming it::

    row = yield Execute(statements.JOB_GET, {"id": job_id})

A composed statement shares its body with others and differs in a fragment
(``sql/fragments/``); its declaration names the body and the fragments it takes.
``tests/test_statements.py`` holds the catalogue and the files together: every
statement file declared once and every declaration with its file, each
declaration's parameters those of its SQL, every composed statement rendered.
Migrations are not statements: :meth:`conveyor._db.queries.Queries.migrations` reads
them in order.
"""

from __future__ import annotations

from typing import Final

from conveyor._db.queries import Statement

# --- sending (``_ops/enqueue.py``) -------------------------------------------------------

_ONE_JOB: Final = (
    "queue", "channel", "notify", "id", "data", "priority", "start_at", "start_in",
    "retry_limit", "retry_delay", "retry_backoff", "retry_delay_max", "expire_in",
    "retention", "delete_after", "dead_letter", "singleton_key", "singleton_seconds",
    "singleton_next_slot", "debounce_seconds", "group_key", "trace_context",
)
"""The parameters of one job's send (``enqueue_input_one``)."""
_STAGED: Final = ("queue", "channel", "notify")
"""The parameters of an insert through the staging table (``enqueue_input_staged``)."""
_ONE: Final = {"input": "enqueue_input_one"}
_STAGED_INPUT: Final = {"input": "enqueue_input_staged"}

# Each enqueue body reads one job's parameters (send) or the staging table (insert).
ENQUEUE = Statement("enqueue", _ONE_JOB, "one", parts=_ONE)
ENQUEUE_STAGED = Statement("enqueue_staged", _STAGED, "one", body="enqueue",
                           parts=_STAGED_INPUT)
ENQUEUE_NEXT_SLOT = Statement("enqueue_next_slot", _ONE_JOB, "one", parts=_ONE)
ENQUEUE_NEXT_SLOT_STAGED = Statement("enqueue_next_slot_staged", _STAGED, "one",
                                     body="enqueue_next_slot", parts=_STAGED_INPUT)
ENQUEUE_DEBOUNCE = Statement("enqueue_debounce", _ONE_JOB, "one", parts=_ONE)
ENQUEUE_DEBOUNCE_STAGED = Statement("enqueue_debounce_staged", _STAGED, "one",
                                    body="enqueue_debounce", parts=_STAGED_INPUT)
ENQUEUE_DEFAULTS = Statement("enqueue_defaults", ("queue",), "one")
ENQUEUE_DIRECT = Statement("enqueue_direct", fetch="none")
"""A ``COPY`` (a ``Copy`` step)."""
ENQUEUE_FLOW = Statement("enqueue_flow", fetch="none")
"""A ``COPY`` (a ``Copy`` step)."""
ENQUEUE_STAGE = Statement("enqueue_stage", fetch="none")
ENQUEUE_COPY = Statement("enqueue_copy", fetch="none")
"""A ``COPY`` (a ``Copy`` step) into the staging table."""
ENQUEUE_UNSTAGE = Statement("enqueue_unstage", fetch="none")
JOBS_ANALYZE_SAMPLE = Statement("jobs_analyze_sample", fetch="one")
JOBS_ANALYZE = Statement("jobs_analyze", fetch="none")
JOBS_ANALYZE_SAMPLE_RESTORE = Statement("jobs_analyze_sample_restore", ("previous",), "none")
NOTIFY_QUEUE = Statement("notify_queue", ("channel", "queue"), "none")
NOTIFY_QUEUES = Statement("notify_queues", ("channel", "queues"), "none")

# --- claiming and settling (``_ops/claims.py``, ``worker/``) -----------------------------

_CLAIM: Final = ("queue", "limit", "lease", "visibility")
_QUEUE_DEFAULTS: Final = (
    "policy", "priority", "retry_limit", "retry_delay", "retry_backoff", "expire_in",
    "retention", "delete_after",
)
"""A queue's job defaults, which a worker's claims leave out of the rows."""
_WORKER_COLUMNS: Final = {"job_columns": "claimed_columns"}

CLAIM = Statement("claim", _CLAIM, tuples=True)
CLAIM_WORKER = Statement("claim_worker", _CLAIM + _QUEUE_DEFAULTS, tuples=True, body="claim",
                         parts=_WORKER_COLUMNS)
"""A worker's claim: only the columns a worker cannot know (``claimed_columns``)."""
CLAIM_FLOW_LOCK = Statement("claim_flow_lock", ("schema", "queue"), "none")
CLAIM_FLOW = Statement("claim_flow", (*_CLAIM, "unkeyed"), tuples=True)
CLAIM_FLOW_WORKER = Statement("claim_flow_worker", (*_CLAIM, "unkeyed", *_QUEUE_DEFAULTS),
                              tuples=True, body="claim_flow", parts=_WORKER_COLUMNS)
_POP: Final = {"claim_update": "pop_update"}
POP = Statement("pop", ("queue", "limit"), tuples=True, body="claim", parts=_POP)
POP_FLOW = Statement("pop_flow", ("queue", "limit", "unkeyed"), tuples=True, body="claim_flow",
                     parts=_POP)
QUEUE_FLOW = Statement("queue_flow", ("queue",), "one")
QUEUE_HELD_BACK = Statement("queue_held_back", ("queue",), "one")
COMPLETE = Statement("complete", ("id", "attempt", "output", "progress", "unwaited"), "none")
COMPLETE_SETTLED = Statement("complete_settled", ("id", "attempt", "output", "progress"),
                             "none")
FAIL = Statement("fail", ("channel", "id", "attempt", "error", "retry_after", "final",
                          "progress", "unwaited"))
RELEASE = Statement("release", ("id", "attempt", "channel", "delay"))
EXTEND = Statement("extend", ("id", "attempt", "lease"))
HEARTBEAT = Statement("heartbeat", ("id", "attempt", "progress", "lease"))
LEASE_EXPIRED = Statement("lease_expired", ("limit",))
LEASE_EXPIRED_QUEUE = Statement("lease_expired_queue", ("limit", "queue"), body="lease_expired",
                                parts={"lease_scope": "lease_scope_queue"})
WORKER_ANNOUNCE = Statement("worker_announce", ("id", "host", "pid", "queues", "concurrency",
                                                "ttl"), "none")
WORKER_LEAVE = Statement("worker_leave", ("id",), "none")

# --- dependencies between jobs (``_ops/dependencies.py``) -------------------------------

SETTLE_DEPENDENTS = Statement("settle_dependents", ("ids", "removing", "channel"), "one")
RELEASE_HELD = Statement("release_held", ("limit", "channel"), "one")
MARK_WAITED = Statement("mark_waited", ("ids",))
FLOW_EDGES = Statement("flow_edges", fetch="none")
"""A ``COPY`` (a ``Copy`` step)."""
FLOW_LINK = Statement("flow_link", ("id", "waiting_for", "waited"), "none")
FLOW_EXTEND = Statement("flow_extend", ("parent", "step", "root_step", "root_job"), "none")
JOB_DEPENDENCIES = Statement("job_dependencies", ("id", "limit", "after"), tuples=True)
JOB_DEPENDENTS = Statement("job_dependents", ("id", "limit", "after"), tuples=True)
WAIT_REGISTER = Statement("wait_register", ("id",), "none")
WAIT_CHECK = Statement("wait_check", ("id",), "one")
WAIT_UNREGISTER = Statement("wait_unregister", ("id",), "none")

# --- jobs and queues (``_ops/admin.py``, ``_ops/flow.py``, ``_ops/status.py``, ``testing.py``) ---

_JOB_FILTER: Final = (
    "queue", "states", "singleton_key", "key", "search", "search_id", "data_contains",
    "source_id", "scheduled", "before_id",
)
"""The parameters of the job list's filters (``job_filter``)."""

JOB_GET = Statement("job_get", ("id",), "one", tuples=True)
JOBS_FIND = Statement("jobs_find", (*_JOB_FILTER, "limit"), tuples=True)
JOBS_COUNT = Statement("jobs_count", _JOB_FILTER, "one")
JOBS_MATCH = Statement("jobs_match", (*_JOB_FILTER, "limit"))
JOBS_RETRY = Statement("jobs_retry", ("ids", "channel"))
JOBS_CANCEL = Statement("jobs_cancel", ("ids",))
JOBS_RESUME = Statement("jobs_resume", ("ids", "channel"))
JOBS_DELETE = Statement("jobs_delete", ("ids",))
JOBS_MAKE_DUE = Statement("jobs_make_due", ("queue",), "none")
QUEUE_ENSURE = Statement("queue_ensure", ("names",), "none")
QUEUE_UPDATE = Statement("queue_update", (
    "name", "policy", "priority", "retry_limit", "retry_delay", "retry_backoff",
    "retry_delay_max", "set_retry_delay_max", "expire_in", "retention", "delete_after",
    "dead_letter", "set_dead_letter", "rate_limit", "rate_period", "set_rate_limit",
    "set_rate_period", "group_concurrency", "set_group_concurrency", "group_rate_limit",
    "set_group_rate_limit", "group_rate_period", "set_group_rate_period", "fair",
), "one")
QUEUE_GET = Statement("queue_get", ("name",), "one")
QUEUE_LIST = Statement("queue_list")
QUEUE_DELETE = Statement("queue_delete", ("name",))
QUEUE_COUNTS = Statement("queue_counts", ("queue",))
QUEUE_PAUSE = Statement("queue_pause", ("name", "duration"), "one")
QUEUE_RESUME = Statement("queue_resume", ("name",), "one")
QUEUE_SUMMARIES = Statement("queue_summaries")
GROUP_GET = Statement("group_get", ("queue", "group_key"), "one")
GROUP_PAUSE = Statement("group_pause", ("queue", "group_key", "duration"), "one")
GROUP_RESUME = Statement("group_resume", ("queue", "group_key"), "one")
GROUP_UPDATE = Statement("group_update", (
    "queue", "group_key", "concurrency", "set_concurrency", "rate_limit", "set_rate_limit",
    "rate_period", "set_rate_period",
), "one")
STATS_HISTORY = Statement("stats_history", ("queue", "since"))
LEADER_GET = Statement("leader_get", ("role",), "one")
WORKER_LIST = Statement("worker_list")

# --- schedules (``_ops/schedules.py``) ---------------------------------------------------

SCHEDULE_SAVE = Statement("schedule_save", ("name", "cron", "tz", "queue", "data", "options",
                                            "missed", "next_tick"), "one")
SCHEDULE_DELETE = Statement("schedule_delete", ("name",), "none")
SCHEDULE_LIST = Statement("schedule_list")
SCHEDULE_LOCK = Statement("schedule_lock", ("name",), "one")
SCHEDULE_PAUSE = Statement("schedule_pause", ("name",), "one")
SCHEDULE_RESUME = Statement("schedule_resume", ("name", "next_tick"), "one")
SCHEDULE_LAST_RUN = Statement("schedule_last_run", ("name", "at", "job"), "none")
SCHEDULE_DUE = Statement("schedule_due", ("now",))
SCHEDULE_TICK_CLAIM = Statement("schedule_tick_claim", ("name", "tick"), "one")
SCHEDULE_TICK_JOB = Statement("schedule_tick_job", ("name", "tick", "job"), "none")
SCHEDULE_ADVANCE = Statement("schedule_advance", ("name", "next_tick", "now"), "none")

# --- leadership and maintenance (``worker/leader.py``, ``worker/maintenance.py``) --------

LEADER_ELECT = Statement("leader_elect", ("role", "holder", "lease"), "one")
LEADER_FENCE = Statement("leader_fence", ("role", "holder", "term"), "one")
LEADER_RESIGN = Statement("leader_resign", ("role", "holder"), "none")
MAINTENANCE_DELETE = Statement("maintenance_delete", ("limit",), "one")
MAINTENANCE_EXPIRE = Statement("maintenance_expire", ("limit", "error"))
MAINTENANCE_WAITERS = Statement("maintenance_waiters", fetch="none")
MAINTENANCE_WORKERS = Statement("maintenance_workers", fetch="none")
MAINTENANCE_AUTOVACUUM = Statement("maintenance_autovacuum", fetch="one")
STATS_SINCE = Statement("stats_since", ("interval",), "one")
STATS_SNAPSHOT = Statement("stats_snapshot", ("since",))
STATS_PRUNE = Statement("stats_prune", ("keep",), "none")

# --- migrations (``_db/migrate.py``) -----------------------------------------------------

MIGRATION_LOCK = Statement("migration_lock", ("schema",), "none")
MIGRATION_PREPARE = Statement("migration_prepare", fetch="none")
MIGRATION_TABLE_EXISTS = Statement("migration_table_exists", ("schema",), "one")
MIGRATION_VERSION = Statement("migration_version", fetch="one")
MIGRATION_RECORD = Statement("migration_record", ("version", "name"), "none")

# --- connections (``_db/session.py``, ``_db/notify.py``, ``_db/plan.py``) ----------------

SESSION = Statement("session", fetch="none")
LISTEN = Statement("listen", fetch="none")
HEALTH = Statement("health", fetch="one")
IDLE_GUARD = Statement("idle_guard", ("milliseconds",), "none")

CATALOGUE: Final = tuple(value for value in list(globals().values())
                         if isinstance(value, Statement))
"""Every declaration above, in order."""
