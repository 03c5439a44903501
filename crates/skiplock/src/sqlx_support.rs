//! Enqueue inside a caller's `sqlx` transaction (feature `sqlx`): the same
//! `insert.sql`, bound through sqlx instead of tokio-postgres.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::Row as _;
use sqlx::types::Json;

use crate::client::enqueue::{Columns, Enqueued};
use crate::{Client, Error, NewJob, Result};

pub(crate) async fn enqueue(
    client: &Client,
    conn: &mut sqlx::PgConnection,
    jobs: Vec<NewJob>,
) -> Result<Vec<Enqueued>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let cols = Columns::build(jobs, client.args_max_bytes())?;
    let mut out = insert(client, conn, &cols).await?;
    // As in `Client::insert_columns`: ask again about unique keys whose holder
    // committed after the statement's snapshot.
    for _ in 0..3 {
        let missing: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            break;
        }
        let found = insert(client, conn, &cols.subset(&missing)).await?;
        for (i, r) in missing.into_iter().zip(found) {
            out[i] = r;
        }
    }
    out.into_iter().map(|r| r.ok_or(Error::Duplicate { key: None })).collect()
}

async fn insert(client: &Client, conn: &mut sqlx::PgConnection, c: &Columns) -> Result<Vec<Option<Enqueued>>> {
    let args: Vec<Json<&RawValue>> = c.args.iter().map(|a| Json(a.as_ref())).collect();
    let tags: Vec<Option<Json<&RawValue>>> = c
        .tags
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
    let rows = sqlx::query(&client.stmts().job_insert.sql)
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
        .fetch_all(conn)
        .await
        .map_err(sqlx_error)?;
    rows.iter()
        .map(|r| {
            let id: Option<i64> = r.try_get("id").map_err(sqlx_error)?;
            let inserted: bool = r.try_get("inserted").map_err(sqlx_error)?;
            Ok(id.map(|id| Enqueued { id, inserted }))
        })
        .collect()
}

fn sqlx_error(e: sqlx::Error) -> Error {
    if let Some(db) = e.as_database_error()
        && db.code().as_deref() == Some("23505")
    {
        return Error::Duplicate { key: None };
    }
    Error::Sqlx(e)
}
