//! Enqueue inside a caller's `sqlx` transaction (feature `sqlx`): the same
//! `insert.sql`, bound through sqlx instead of tokio-postgres, under the
//! same names as the tokio-postgres calls with `sqlx` in them.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::Row as _;
use sqlx::types::Json;

use std::collections::HashMap;

use super::enqueue::chunks;
use crate::db::columns::{Columns, InsertOutcome};
use crate::db::insert::Resolver;
use crate::{Client, EnqueueOptions, Enqueued, Error, Job, NewJob, Result};

#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
impl Client {
    /// Enqueues a typed job inside the caller's `sqlx` transaction (or on a
    /// plain connection, autocommit): the job exists, and its wake-up is
    /// sent, only if that transaction commits. The sqlx twin of
    /// [`Client::enqueue_tx`]: `client.enqueue_sqlx_tx(&mut *tx, &job, opts)`.
    ///
    /// # Errors
    ///
    /// As [`Client::enqueue`]; database errors as [`Error::Sqlx`], which
    /// [`Error::sqlstate`] and [`Error::is_transient`] classify like the
    /// others. An error leaves the caller's transaction aborted, as any
    /// failed statement does.
    ///
    /// # Example: a user and their welcome email, both or neither
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize)]
    /// struct Welcome { user_id: i64 }
    /// impl skiplock::Job for Welcome { const KIND: &'static str = "welcome"; }
    ///
    /// # async fn run(client: skiplock::Client, pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = pool.begin().await?;
    /// let (user_id,): (i64,) = sqlx::query_as("INSERT INTO users (name) VALUES ($1) RETURNING id")
    ///     .bind("ada")
    ///     .fetch_one(&mut *tx)
    ///     .await?;
    /// let job = client.enqueue_sqlx_tx(&mut *tx, &Welcome { user_id }, Default::default()).await?;
    /// tx.commit().await?;
    /// println!("welcome email is job {}", job.id);
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_sqlx_tx<J: Job>(
        &self,
        conn: &mut sqlx::PgConnection,
        job: &J,
        opts: EnqueueOptions,
    ) -> Result<Enqueued> {
        let mut out = self.enqueue_many_sqlx_tx(conn, vec![NewJob::typed(job, opts)?]).await?;
        Ok(out.pop().expect("one result per job"))
    }

    /// Enqueues many jobs inside the caller's `sqlx` transaction: the sqlx
    /// twin of [`Client::enqueue_many_tx`]. Jobs whose unique key is taken
    /// come back with `inserted: false` and the holder's id. (Through sqlx
    /// every batch is an array insert; the COPY path of large batches is
    /// the tokio-postgres calls'.)
    ///
    /// # Errors
    ///
    /// As [`Client::enqueue_many`]; database errors as [`Error::Sqlx`].
    pub async fn enqueue_many_sqlx_tx(
        &self,
        conn: &mut sqlx::PgConnection,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<Enqueued>> {
        let mut out = Vec::new();
        for cols in chunks(jobs, self.inner.args_max_bytes)? {
            out.extend(insert_columns(self, conn, &cols).await?);
        }
        Ok(out)
    }
}

/// As `Client::insert_columns`, through sqlx.
async fn insert_columns(client: &Client, conn: &mut sqlx::PgConnection, cols: &Columns) -> Result<Vec<Enqueued>> {
    let mut rounds = Resolver::new(cols);
    while let Some(cols) = rounds.next_round() {
        let wake = client.wake(&cols);
        let out = insert(client, conn, &cols, &wake).await?;
        let keys = out.taken_keys();
        let holders: HashMap<String, i64> = if keys.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as::<_, (String, i64)>(&client.db().stmts().job_holders.sql)
                .bind(&keys)
                .fetch_all(&mut *conn)
                .await
                .map_err(sqlx_error)?
                .into_iter()
                .collect()
        };
        rounds.record(&out, &holders);
    }
    rounds.finish()
}

async fn insert(client: &Client, conn: &mut sqlx::PgConnection, c: &Columns, wake: &[String]) -> Result<InsertOutcome> {
    let args: Vec<Json<&RawValue>> = c.args.iter().map(|a| Json(a.as_ref())).collect();
    let tags_json = c.tags_json();
    let tags: Vec<Option<Json<&RawValue>>> = tags_json
        .iter()
        .map(|t| t.as_deref().map(|t| serde_json::from_str::<&RawValue>(t).map(Json)).transpose())
        .collect::<Result<_, _>>()
        .map_err(|source| Error::Json { kind: "tags".into(), source })?;
    let meta: Vec<Json<&RawValue>> = c
        .meta
        .iter()
        .map(|m| serde_json::from_str::<&RawValue>(m).map(Json))
        .collect::<Result<_, _>>()
        .map_err(|source| Error::Json { kind: "meta".into(), source })?;
    let run_at: &[Option<DateTime<Utc>>] = &c.run_at;
    let rows = sqlx::query(&client.db().stmts().job_insert.sql)
        .bind(&c.queue)
        .bind(&c.kind)
        .bind(&args)
        .bind(&c.priority)
        .bind(run_at)
        .bind(&c.delay_ms)
        .bind(&c.max_attempts)
        .bind(&c.unique_key)
        .bind(&tags)
        .bind(&meta)
        .bind(&c.timeout_ms)
        .bind(&c.unique_args)
        .bind(&c.unique_period_s)
        .bind(&c.unique_final)
        .bind(wake)
        .fetch_all(&mut *conn)
        .await
        .map_err(sqlx_error)?;
    let row = rows.first().expect("one row");
    let ids: Option<Vec<i64>> = row.try_get("ids").map_err(sqlx_error)?;
    let inserted: Option<Vec<i64>> = row.try_get("inserted").map_err(sqlx_error)?;
    let taken_ids: Option<Vec<i64>> = row.try_get("taken_ids").map_err(sqlx_error)?;
    let taken_keys: Option<Vec<String>> = row.try_get("taken_keys").map_err(sqlx_error)?;
    Ok(InsertOutcome::new(
        ids.unwrap_or_default(),
        inserted.unwrap_or_default(),
        taken_ids.unwrap_or_default(),
        taken_keys.unwrap_or_default(),
    ))
}

fn sqlx_error(e: sqlx::Error) -> Error {
    Error::from(e)
}
