"""Schema migrations, applied in order; entry N upgrades schema N-1 to N. Never edit a shipped entry.

One list for both engines: SQLite keeps the version in PRAGMA user_version (as it always has, so existing data
directories migrate as before), PostgreSQL in the table `ansf_schema`; `postgres_ddl` turns an entry's SQLite
wording into PostgreSQL's (identity columns, 8-byte floats), so a version number means the same schema on both.
"""

import re


class PostgresOnly(str):
    """A migration statement only PostgreSQL runs (SQLite counts the step and skips it)."""

    __slots__ = ()


MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE swarms (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            topology TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE agents (
            swarm_id TEXT NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
            id TEXT NOT NULL,
            position INTEGER NOT NULL,
            role TEXT NOT NULL,
            capabilities TEXT NOT NULL,
            capacity INTEGER NOT NULL,
            lead TEXT,
            PRIMARY KEY (swarm_id, id)
        )""",
        """CREATE TABLE tasks (
            swarm_id TEXT NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
            id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            description TEXT NOT NULL,
            priority INTEGER NOT NULL,
            status TEXT NOT NULL,
            assignee TEXT,
            p_success REAL,
            confidence REAL,
            strategy TEXT,
            lease_owner TEXT,
            lease_expires_at REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            result TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (swarm_id, id)
        )""",
        "CREATE INDEX tasks_by_status ON tasks (swarm_id, status)",
        """CREATE TABLE task_deps (
            swarm_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            depends_on TEXT NOT NULL,
            PRIMARY KEY (swarm_id, task_id, depends_on),
            FOREIGN KEY (swarm_id, task_id) REFERENCES tasks(swarm_id, id) ON DELETE CASCADE
        )""",
        """CREATE TABLE outcomes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            swarm_id TEXT NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
            task_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            task_text TEXT NOT NULL,
            success INTEGER NOT NULL,
            summary TEXT NOT NULL,
            duration_s REAL,
            p_success REAL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX outcomes_by_agent ON outcomes (swarm_id, agent_id, id)",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            swarm_id TEXT NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
            from_agent TEXT NOT NULL,
            to_agent TEXT,
            route TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX messages_by_swarm ON messages (swarm_id, id)",
        """CREATE TABLE message_recipients (
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            agent_id TEXT NOT NULL,
            PRIMARY KEY (message_id, agent_id)
        )""",
        """CREATE TABLE benchmark_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            suite TEXT NOT NULL,
            created_at REAL NOT NULL,
            report TEXT NOT NULL
        )""",
    ],
]

MIGRATIONS.append(
    [
        # One row per coordination decision: what the dashboard and benchmarks read latency and use from.
        """CREATE TABLE decisions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            swarm_id TEXT,
            strategy TEXT NOT NULL,
            model TEXT,
            agents INTEGER NOT NULL,
            tasks INTEGER NOT NULL,
            assigned INTEGER NOT NULL,
            elapsed_ms REAL NOT NULL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX decisions_by_time ON decisions (created_at)",
        # Monitoring history: a ring of points per series (the collector trims old rows).
        """CREATE TABLE metric_points (
            series TEXT NOT NULL,
            ts REAL NOT NULL,
            value REAL NOT NULL,
            PRIMARY KEY (series, ts)
        )""",
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            severity TEXT NOT NULL,
            message TEXT NOT NULL,
            value REAL,
            threshold REAL,
            raised_at REAL NOT NULL,
            cleared_at REAL
        )""",
        "CREATE INDEX alerts_open ON alerts (name, cleared_at)",
        """CREATE TABLE phase_changes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            from_phase TEXT,
            to_phase TEXT NOT NULL,
            reason TEXT NOT NULL,
            used_fraction REAL,
            created_at REAL NOT NULL
        )""",
    ]
)

MIGRATIONS.append(
    [
        # What each probabilistic estimator predicted for an assigned (task, agent) pair, until the outcome comes
        # back and is scored (then the row is consumed): what `auto` learns which estimator to trust from.
        """CREATE TABLE predictions (
            swarm_id TEXT NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
            task_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            estimator TEXT NOT NULL,
            p REAL NOT NULL,
            PRIMARY KEY (swarm_id, task_id, agent_id, estimator)
        )""",
        # Realised predictive scores per swarm and estimator (sums; divide by n).
        """CREATE TABLE estimator_scores (
            swarm_id TEXT NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
            estimator TEXT NOT NULL,
            n INTEGER NOT NULL,
            log_loss_sum REAL NOT NULL,
            brier_sum REAL NOT NULL,
            PRIMARY KEY (swarm_id, estimator)
        )""",
    ]
)

MIGRATIONS.append(
    [
        # Claims as history: each claim of a task has a number (tasks.claim_seq, the fencing number of its lease);
        # an outcome belongs to one claim, at most once.
        "ALTER TABLE tasks ADD COLUMN claim_seq INTEGER NOT NULL DEFAULT 0",
        "UPDATE tasks SET claim_seq = attempts",
        """CREATE TABLE claims (
            swarm_id TEXT NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
            task_id TEXT NOT NULL,
            claim_seq INTEGER NOT NULL,
            agent_id TEXT NOT NULL,
            claimed_at REAL NOT NULL,
            ended_at REAL,
            ended TEXT,
            PRIMARY KEY (swarm_id, task_id, claim_seq)
        )""",
        "CREATE INDEX claims_by_agent ON claims (swarm_id, agent_id, task_id)",
        """INSERT INTO claims (swarm_id, task_id, claim_seq, agent_id, claimed_at)
           SELECT swarm_id, id, claim_seq, lease_owner, updated_at FROM tasks
           WHERE status = 'claimed' AND lease_owner IS NOT NULL""",
        "ALTER TABLE outcomes ADD COLUMN claim_seq INTEGER",
        "ALTER TABLE outcomes ADD COLUMN receipt TEXT",
        "CREATE UNIQUE INDEX outcomes_once_per_claim ON outcomes (swarm_id, task_id, claim_seq) "
        "WHERE claim_seq IS NOT NULL",
        # When an agent last did anything on the board: work pinned to an agent away for long may be taken over.
        "ALTER TABLE agents ADD COLUMN last_seen_at REAL",
        # Model loads, timed apart from the decisions they precede (the latency alert reads decisions only).
        """CREATE TABLE model_loads (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            profile TEXT NOT NULL,
            trigger TEXT NOT NULL,
            elapsed_ms REAL NOT NULL,
            created_at REAL NOT NULL
        )""",
        # What a serving process last reported about its parts (the language servers...), for watchers in
        # other processes such as the standalone dashboard.
        """CREATE TABLE component_status (
            name TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            status TEXT NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ]
)


MIGRATIONS.append(
    [
        # What a success unblocks is looked up by the dependency: without this, every report scans task_deps.
        "CREATE INDEX task_deps_by_dependency ON task_deps (swarm_id, depends_on)",
    ]
)

MIGRATIONS.append(
    [
        # Claim expiry reads open claims only; a partial index keeps that independent of how many claims ended.
        "CREATE INDEX claims_open ON claims (swarm_id, task_id, claim_seq) WHERE ended IS NULL",
    ]
)


MIGRATIONS.append(
    [
        # The newest scored (p, outcome) pairs per swarm and estimator, a ring of scoring.KEPT_OUTCOMES slots
        # (slot = seq mod the ring's size; seq = estimator_scores.n when the pair was scored): what `auto`
        # recalibrates to score how each estimator orders outcomes, not its scale. Outcomes scored before this
        # table existed keep only their raw sums in estimator_scores (their p was consumed).
        """CREATE TABLE estimator_outcomes (
            swarm_id TEXT NOT NULL REFERENCES swarms(id) ON DELETE CASCADE,
            estimator TEXT NOT NULL,
            slot INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            p REAL NOT NULL,
            success INTEGER NOT NULL,
            PRIMARY KEY (swarm_id, estimator, slot)
        )""",
        # Reading a swarm's record (every swarm_status) from this index alone, oldest first: on SQLite a read of
        # 2 048 pairs through the key and the table cost several times more.
        "CREATE INDEX estimator_outcomes_in_order ON estimator_outcomes (swarm_id, estimator, seq, p, success)",
    ]
)


MIGRATIONS.append(
    [
        # A claim's candidates rank by assignee (the claimant's own, then unassigned), then priority and order:
        # read in this order, PostgreSQL's claim (board/pg_functions.py) stops at the first ready task instead of
        # ranking every open one.
        # SQLite's claim (the single ranking query) has no use for them: there they would only cost writes.
        PostgresOnly("CREATE INDEX tasks_claimable ON tasks (swarm_id, assignee, priority DESC, seq) "
                     "WHERE status IN ('open', 'claimed')"),
        PostgresOnly("CREATE INDEX tasks_claimable_free ON tasks (swarm_id, priority DESC, seq) "
                     "WHERE status IN ('open', 'claimed') AND assignee IS NULL"),
    ]
)



MIGRATIONS.append(
    [
        # Whose outcome each kept pair is: the success model's p is shifted per agent as well as per swarm
        # (coordinator/success.py: agent_shifts). Pairs kept before this column existed stay without an agent.
        "ALTER TABLE estimator_outcomes ADD COLUMN agent_id TEXT",
        "DROP INDEX estimator_outcomes_in_order",
        "CREATE INDEX estimator_outcomes_in_order ON estimator_outcomes "
        "(swarm_id, estimator, seq, p, success, agent_id)",
    ]
)

MIGRATIONS.append(
    [
        # What dissolve_swarm removed, kept after the swarm is gone: a client that lost the answer and calls again
        # gets it back instead of "unknown swarm", which read as if the first call had failed. One short row per
        # dissolved swarm (swarm ids are random, never reused).
        """CREATE TABLE dissolved_swarms (
            id TEXT PRIMARY KEY,
            receipt TEXT NOT NULL,
            dissolved_at REAL NOT NULL
        )""",
    ]
)

_PG_REWRITES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    # PostgreSQL's REAL is 4 bytes: timestamps would lose their seconds. SQLite's REAL is an 8-byte float.
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
]


def postgres_ddl(statement: str) -> str:
    """A migration statement as PostgreSQL takes it."""
    for pattern, replacement in _PG_REWRITES:
        statement = pattern.sub(replacement, statement)
    return statement
