//! JSON in and out of `jsonb` without a detour through `serde_json::Value`:
//! args are serialized once by the caller and sent as text, and read back as
//! raw text for the handler to deserialize into its own type.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use postgres_types::{FromSql, IsNull, ToSql, Type, accepts, to_sql_checked};
use serde_json::value::RawValue;

/// JSON text sent as a `jsonb` (or `json`) parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonText<'a>(pub &'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1); // jsonb binary format version
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    accepts!(JSON, JSONB);
    to_sql_checked!();
}

/// A `jsonb` (or `json`) column read as raw JSON text.
#[derive(Debug, Clone)]
pub(crate) struct RawJson(pub Box<RawValue>);

impl<'a> FromSql<'a> for RawJson {
    fn from_sql(ty: &Type, mut raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => raw = rest,
                _ => return Err("unsupported jsonb version".into()),
            }
        }
        let text = std::str::from_utf8(raw)?;
        Ok(RawJson(RawValue::from_string(text.to_owned())?))
    }
    accepts!(JSON, JSONB);
}
