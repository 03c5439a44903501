//! Bulk insert through binary COPY: the jobs go to the server as one stream
//! instead of as statement parameters, 1.7 times as fast as the multi-row
//! INSERT for 100,000 jobs (docs/DESIGN.md). COPY cannot resolve unique-key
//! conflicts, so it takes only jobs without unique keys.

use std::pin::pin;

use chrono::{DateTime, Utc};
use postgres_types::{ToSql, Type};
use tokio_postgres::binary_copy::BinaryCopyInWriter;

use super::On;
use super::columns::Columns;
use super::json::JsonText;
use crate::error::{Error, Result};
use crate::job::Enqueued;

/// The enum's text form is sent as text; the column's type converts it.
#[derive(Debug)]
struct StateText(&'static str);

impl ToSql for StateText {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(postgres_types::IsNull::No)
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
    postgres_types::to_sql_checked!();
}

/// Copies `cols` (no unique keys) into the jobs table on `pg`, the
/// connection under `on`: three round trips (ids and clock, the COPY, the
/// wake-ups), so meant for batches. Inside a transaction the wake-ups go out
/// at commit; in autocommit, right after the COPY, never before the jobs
/// exist.
pub(crate) async fn insert(
    on: On<'_>,
    pg: &tokio_postgres::Client,
    cols: &Columns,
    state_type: &Type,
    wake: &[String],
) -> Result<Vec<Enqueued>> {
    copy(on, pg, cols, state_type, wake).await.map_err(|e| Error::from_pg(e, on.schema()))
}

async fn copy(
    on: On<'_>,
    pg: &tokio_postgres::Client,
    cols: &Columns,
    state_type: &Type,
    wake: &[String],
) -> std::result::Result<Vec<Enqueued>, tokio_postgres::Error> {
    let s = on.s;
    let n = cols.len() as i64;
    let row = pg.query_one(&*s.job_copy_prepare.sql, &[&n]).await?;
    let now: DateTime<Utc> = row.get(0);
    let ids: Vec<i64> = row.get(1);
    let sink = pg.copy_in(&*s.job_copy_in.sql).await?;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::JSONB,
        Type::INT2,
        Type::TIMESTAMPTZ,
        state_type.clone(),
        Type::INT4,
        Type::TEXT_ARRAY,
        Type::JSONB,
        Type::INT4,
    ];
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
    for (i, id) in ids.iter().enumerate() {
        let run_at = match (cols.run_at[i], cols.delay_ms[i]) {
            (Some(at), _) => at,
            (None, Some(ms)) => now + chrono::Duration::milliseconds(ms),
            (None, None) => now,
        };
        let state = StateText(if run_at > now { "scheduled" } else { "available" });
        let tags = &cols.tags[i];
        writer
            .as_mut()
            .write(&[
                id,
                &cols.queue[i],
                &cols.kind[i],
                &JsonText(cols.args[i].get()),
                &cols.priority[i],
                &run_at,
                &state,
                &cols.max_attempts[i],
                tags,
                &JsonText(&cols.meta[i]),
                &cols.timeout_ms[i],
            ])
            .await?;
    }
    writer.finish().await?;
    if !wake.is_empty() {
        pg.query_one(&*s.job_notify.sql, &[&wake]).await?;
    }
    Ok(ids.into_iter().map(|id| Enqueued { id, inserted: true }).collect())
}
