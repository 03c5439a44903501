//! The Postgres schema skiplock lives in, and the migrator that builds it.
//!
//! Migrations are `migrations/NNNN_name.{up,down}.sql`, embedded in the binary.
//! [`migrate`] applies the pending ones in order, all in one transaction under
//! a transaction-level advisory lock: concurrent migrators wait for each other,
//! a failed migration leaves nothing behind, and it works through PgBouncer in
//! transaction mode (no session state).

use std::fmt;

use tokio_postgres::GenericClient;

use crate::error::{Error, Result};

/// The default schema name, `skiplock`.
pub const SCHEMA_DEFAULT: &str = "skiplock";

/// Longest schema name, in bytes: 55. PostgreSQL's identifiers (and NOTIFY
/// channel names) hold at most 63 bytes, and the longest name derived from
/// the schema's is its control channel, `{schema}_control` (8 bytes more).
/// Every other derived name (the archive's partitions, indexes) lives inside
/// the schema and is not prefixed with its name.
pub const SCHEMA_NAME_MAX: usize = 63 - "_control".len();

/// A validated Postgres schema name: 1 to [`SCHEMA_NAME_MAX`] (55) bytes of
/// `[a-z0-9_]`, starting with a letter or underscore, so it can be placed in
/// SQL and in `LISTEN` channel names without quoting tricks.
///
/// # Example
///
/// ```
/// use skiplock::Schema;
/// assert!(Schema::new("jobs_v2").is_ok());
/// assert!(Schema::new("Robert'); DROP TABLE students;--").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Schema(String);

impl Schema {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for `schema` when the name is empty, longer
    /// than [`SCHEMA_NAME_MAX`] bytes, starts with a digit or `pg_`, or holds
    /// anything but lower-case ASCII letters, digits and `_`.
    pub fn new(name: &str) -> Result<Schema> {
        let ok_first = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
        let ok_rest = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if name.is_empty() || name.len() > SCHEMA_NAME_MAX || !ok_first || !ok_rest || name.starts_with("pg_") {
            return Err(Error::invalid(
                "schema",
                format!(
                    "{name:?} is not a valid schema name (1-{SCHEMA_NAME_MAX} of a-z, 0-9, _; not starting with a \
                     digit or pg_)"
                ),
            ));
        }
        Ok(Schema(name.to_owned()))
    }

    /// The bare name, e.g. `skiplock`.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Replaces `{schema}` with the quoted identifier, `{schema_name}` with
    /// the bare name, and each of [`LIMITS`]' placeholders (`{KIND_MAX}`)
    /// with its number. The name was validated, so neither can break out.
    pub(crate) fn render(&self, sql: &str) -> String {
        let mut out = sql.replace("{schema}", &format!("\"{}\"", self.0)).replace("{schema_name}", &self.0);
        for (placeholder, value) in LIMITS {
            if out.contains(placeholder) {
                out = out.replace(placeholder, &value.to_string());
            }
        }
        out
    }

    /// The NOTIFY channel that announces newly available jobs (payload: the queue).
    pub fn insert_channel(&self) -> String {
        format!("{}_insert", self.0)
    }

    /// The NOTIFY channel for control messages to workers (job cancels, queue pauses).
    pub fn control_channel(&self) -> String {
        format!("{}_control", self.0)
    }
}

impl Default for Schema {
    fn default() -> Self {
        Schema(SCHEMA_DEFAULT.to_owned())
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The limits SQL checks with, by placeholder: a migration writes
/// `{KIND_MAX}` where it means [`KIND_MAX`](crate::KIND_MAX), and
/// [`Schema::render`] puts in the number, so the SQL API's checks and the
/// Rust ones come from the same constants. Durations are in whole seconds
/// (`_S`) or milliseconds (`_MS`). A migration keeps the values it was
/// applied with: changing one of these constants needs a migration that
/// re-creates the functions using it.
const LIMITS: &[(&str, i64)] = {
    use crate::validate as v;
    &[
        ("{KIND_MAX}", v::KIND_MAX as i64),
        ("{QUEUE_NAME_MAX}", v::QUEUE_NAME_MAX as i64),
        ("{PRIORITY_DEFAULT}", v::PRIORITY_DEFAULT as i64),
        ("{PRIORITY_MAX}", v::PRIORITY_MAX as i64),
        ("{MAX_ATTEMPTS_DEFAULT}", v::MAX_ATTEMPTS_DEFAULT as i64),
        ("{MAX_ATTEMPTS_LIMIT}", v::MAX_ATTEMPTS_LIMIT as i64),
        ("{ARGS_MAX_BYTES_DEFAULT}", v::ARGS_MAX_BYTES_DEFAULT as i64),
        ("{UNIQUE_KEY_MAX}", v::UNIQUE_KEY_MAX as i64),
        ("{SCHEDULE_HORIZON_S}", v::SCHEDULE_HORIZON.as_secs() as i64),
        ("{ARCHIVE_DAYS_AHEAD_MAX}", v::ARCHIVE_DAYS_AHEAD_MAX as i64),
        ("{ARCHIVE_AT_WINDOW_S}", v::ARCHIVE_AT_WINDOW.as_secs() as i64),
        ("{RETENTION_MAX_S}", v::RETENTION_MAX.as_secs() as i64),
        ("{LEADER_LEASE_MAX_MS}", v::LEADER_LEASE_MAX.as_millis() as i64),
    ]
};

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version, from the file name's number.
    pub version: i32,
    /// Its name, from the file name.
    pub name: &'static str,
    /// SQL that applies it (with `{schema}` placeholders).
    pub up: &'static str,
    /// SQL that reverts it.
    pub down: &'static str,
}

macro_rules! migration {
    ($version:literal, $file:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            up: include_str!(concat!("migrations/", $file, "_", $name, ".up.sql")),
            down: include_str!(concat!("migrations/", $file, "_", $name, ".down.sql")),
        }
    };
}

/// Every migration this library knows, in order.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001", "init"),
    migration!(2, "0002", "operations"),
    migration!(3, "0003", "reliability"),
    migration!(4, "0004", "runtime"),
    migration!(5, "0005", "dashboard"),
    migration!(6, "0006", "marks"),
];

/// What a call to [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Versions applied by this call, in order (empty when already current).
    pub applied: Vec<i32>,
    /// The schema's version afterwards.
    pub version: i32,
}

/// A fingerprint of the embedded migrations (and the limits rendered into
/// them), for caching migrated template databases in tests.
pub fn fingerprint() -> String {
    // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let limits = LIMITS.iter().map(|(k, v)| format!("{k}={v};")).collect::<String>();
    for m in MIGRATIONS {
        for b in m.up.bytes().chain(m.name.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    for b in limits.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtextextended('skiplock.migrate.' || $1::text, 0))";
const BOOTSTRAP_SQL: &str = include_str!("bootstrap.sql");
const APPLIED_SQL: &str = "SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations";
const RECORD_SQL: &str = "INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)";
const UNRECORD_SQL: &str = "DELETE FROM {schema}.schema_migrations WHERE version = $1";

/// Brings `schema` up to the newest version this library knows.
///
/// Creates the schema if needed, then applies every pending migration in one
/// transaction under an advisory lock. Running it again is a no-op; running it
/// from many processes at once is safe.
///
/// # Errors
///
/// [`Error::SchemaTooNew`] when the database is ahead of this library;
/// [`Error::Database`] when a migration fails (nothing is applied then).
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let (mut client, conn) = tokio_postgres::connect("postgres://localhost/app", tokio_postgres::NoTls).await?;
/// tokio::spawn(conn);
/// let report = skiplock::migrate(&mut client, &skiplock::Schema::default()).await?;
/// println!("schema at version {}", report.version);
/// # Ok(()) }
/// ```
pub async fn migrate(client: &mut tokio_postgres::Client, schema: &Schema) -> Result<MigrateReport> {
    migrate_to(client, schema, latest_version()).await
}

/// The newest migration version this library knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Moves `schema` to `target`: applies pending migrations up to it, or
/// reverts (with the `down` scripts) those above it. `target = 0` removes
/// every skiplock object from the schema.
///
/// # Errors
///
/// As [`migrate`]; [`Error::InvalidInput`] for `target` when it is negative or
/// beyond the newest known version.
pub async fn migrate_to(client: &mut tokio_postgres::Client, schema: &Schema, target: i32) -> Result<MigrateReport> {
    if target < 0 || target > latest_version() {
        return Err(Error::invalid("target", format!("{target} is not between 0 and {}", latest_version())));
    }
    let pg = |e| Error::from_pg(e, schema.name());
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute(LOCK_SQL, &[&schema.name()]).await.map_err(pg)?;
    tx.batch_execute(&schema.render(BOOTSTRAP_SQL)).await.map_err(pg)?;
    let current: i32 = tx.query_one(&schema.render(APPLIED_SQL), &[]).await.map_err(pg)?.get(0);
    if current > latest_version() {
        return Err(Error::SchemaTooNew { schema: schema.name().to_owned(), found: current, known: latest_version() });
    }
    let mut applied = Vec::new();
    if target >= current {
        for m in MIGRATIONS.iter().filter(|m| m.version > current && m.version <= target) {
            run_step(&tx, schema, m.up, m).await?;
            tx.execute(&schema.render(RECORD_SQL), &[&m.version, &m.name]).await.map_err(pg)?;
            applied.push(m.version);
        }
    } else {
        for m in MIGRATIONS.iter().rev().filter(|m| m.version > target && m.version <= current) {
            run_step(&tx, schema, m.down, m).await?;
            tx.execute(&schema.render(UNRECORD_SQL), &[&m.version]).await.map_err(pg)?;
            applied.push(m.version);
        }
    }
    tx.commit().await.map_err(pg)?;
    Ok(MigrateReport { applied, version: target })
}

async fn run_step(tx: &tokio_postgres::Transaction<'_>, schema: &Schema, sql: &str, m: &Migration) -> Result<()> {
    tx.batch_execute(&schema.render(sql)).await.map_err(|e| {
        tracing::error!(version = m.version, name = m.name, error = %e, "migration failed");
        Error::from_pg(e, schema.name())
    })
}

/// The schema's applied version (0 when skiplock was never migrated there).
///
/// # Errors
///
/// [`Error::Database`] when the query fails for another reason than a missing schema.
pub async fn version(client: &impl GenericClient, schema: &Schema) -> Result<i32> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&format!("\"{}\".schema_migrations", schema.name())])
        .await
        .map_err(|e| Error::from_pg(e, schema.name()))?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client.query_one(&schema.render(APPLIED_SQL), &[]).await.map_err(|e| Error::from_pg(e, schema.name()))?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_validated() {
        for good in ["skiplock", "_x", "a1_b2", &"a".repeat(55)] {
            assert!(Schema::new(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "Skiplock", "a-b", "a\"b", "a\0b", "pg_catalog", &"a".repeat(56), "é"] {
            let err = Schema::new(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid schema:"), "{bad}: {err}");
        }
    }

    #[test]
    fn derived_channel_names_fit_an_identifier() {
        let longest = Schema::new(&"a".repeat(SCHEMA_NAME_MAX)).unwrap();
        assert!(longest.insert_channel().len() <= 63 && longest.control_channel().len() == 63);
    }

    #[test]
    fn render_replaces_both_placeholders() {
        let s = Schema::new("q").unwrap();
        assert_eq!(
            s.render("SELECT * FROM {schema}.jobs -- '{schema_name}_insert'"),
            "SELECT * FROM \"q\".jobs -- 'q_insert'"
        );
    }

    #[test]
    fn render_fills_in_the_limits_and_leaves_no_placeholder() {
        let s = Schema::default();
        assert_eq!(s.render("x > {KIND_MAX}"), "x > 255");
        // Every `{UPPER_CASE}` a migration or statement uses is a known limit.
        let texts = MIGRATIONS.iter().flat_map(|m| [m.up, m.down]).map(|t| s.render(t));
        let statements = crate::db::Statements::new(&s);
        for text in texts.chain(statements.all().into_iter().map(|st| st.sql.to_string())) {
            let mut rest = text.as_str();
            while let Some(i) = rest.find('{') {
                rest = &rest[i + 1..];
                let word: String = rest.chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
                assert!(word.is_empty() || !rest[word.len()..].starts_with('}'), "unrendered {{{word}}}");
            }
        }
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        assert_eq!(MIGRATIONS[0].version, 1);
    }
}
