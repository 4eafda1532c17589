//! The states of a task and of a device, stored as the text `schema.sql`'s CHECK constraints
//! list (docs/tasks.md has the task lifecycle). Rust code names states only through these
//! enums; SQL statements name them as literals, next to the CHECK constraints they match.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Serialize, Serializer};

/// Where a task is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Waiting for its predecessor in a sequential batch.
    Queued,
    /// Ready to be claimed.
    Pending,
    /// Claimed by a daemon, which holds the attempt until its lease expires.
    Running,
    Completed,
    Failed,
    Cancelled,
    /// Its lease expired with no retries left.
    Timeout,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Queued,
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::Timeout,
    ];

    /// The stored and wire form.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Timeout => "timeout",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Will the task not change again (except a late cancel acknowledgement)?
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed
                | TaskStatus::Failed
                | TaskStatus::Cancelled
                | TaskStatus::Timeout
        )
    }
}

/// What a daemon says it is doing, or `Offline` once it stopped heartbeating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceStatus {
    Online,
    Offline,
    Busy,
    Error,
    Maintenance,
}

impl DeviceStatus {
    /// Every status.
    pub const ALL: [DeviceStatus; 5] = [
        DeviceStatus::Online,
        DeviceStatus::Offline,
        DeviceStatus::Busy,
        DeviceStatus::Error,
        DeviceStatus::Maintenance,
    ];

    /// The stored and wire form.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Online => "online",
            DeviceStatus::Offline => "offline",
            DeviceStatus::Busy => "busy",
            DeviceStatus::Error => "error",
            DeviceStatus::Maintenance => "maintenance",
        }
    }

    /// Parses a status, ignoring ASCII case (daemons send `Online` too).
    pub fn parse(s: &str) -> Option<DeviceStatus> {
        DeviceStatus::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
    }
}

macro_rules! text_enum {
    ($t:ty) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                <$t>::parse(s).ok_or_else(|| FromSqlError::Other(format!("unknown state {s:?}").into()))
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let names: Vec<&str> = <$t>::ALL.iter().map(|s| s.as_str()).collect();
                schemars::json_schema!({ "type": "string", "enum": names })
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
text_enum!(TaskStatus);
text_enum!(DeviceStatus);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_match_the_schema() {
        let schema = crate::db::migrations::SCHEMA;
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
            assert!(
                schema.contains(&format!("'{s}'")),
                "{s} missing from schema.sql"
            );
        }
        for s in DeviceStatus::ALL {
            assert_eq!(DeviceStatus::parse(&s.as_str().to_uppercase()), Some(s));
            assert!(
                schema.contains(&format!("'{s}'")),
                "{s} missing from schema.sql"
            );
        }
        assert!(TaskStatus::Timeout.is_final() && !TaskStatus::Running.is_final());
    }
}
