//! Unit-test support: real `Services` over a temporary database, with a sink that records the
//! after-commit effects, so domain functions can be tested without a socket.

use crate::config::Config;
use crate::db::effects::{Effect, EffectSink};
use crate::db::users::{self, NewUser};
use crate::domain::{Cx, Services};
use std::sync::{Arc, Mutex};

/// Records every effect the writer runs.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<Effect>>);

impl Recorder {
    /// Takes what was recorded so far.
    pub fn take(&self) -> Vec<Effect> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl EffectSink for Recorder {
    fn apply(&self, effects: Vec<Effect>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(effects);
    }
}

/// Services over a fresh database in a temporary directory, and the effect recorder.
pub struct Fixture {
    pub svc: Services,
    pub reader: rusqlite::Connection,
    pub effects: Arc<Recorder>,
    _dir: tempfile::TempDir,
}

impl Default for Fixture {
    fn default() -> Fixture {
        Fixture::new()
    }
}

impl Fixture {
    /// A fresh fixture with the default configuration.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = Config {
            db_path: dir.path().join("ccjk.db"),
            ..Config::default()
        };
        let svc = crate::services(cfg).expect("services");
        let effects = Arc::new(Recorder::default());
        svc.db.set_effect_sink(effects.clone());
        let reader = svc.db.reader().expect("reader");
        Fixture {
            svc,
            reader,
            effects,
            _dir: dir,
        }
    }

    /// A domain context reading through this fixture's connection.
    pub fn cx(&self) -> Cx<'_> {
        Cx::new(&self.svc, &self.reader)
    }

    /// A user on `plan` (no password hashing: the hash is a placeholder), returning its id.
    pub fn user(&self, email: &str, plan: &str) -> i64 {
        let (email, plan) = (email.to_string(), plan.to_string());
        self.svc
            .db
            .write(move |tx| {
                Ok(users::insert(
                    tx,
                    &NewUser {
                        email: &email,
                        email_key: &crate::domain::text::email_key(&email),
                        username: None,
                        display_name: None,
                        password_hash: "not-a-phc-string",
                        plan: &plan,
                        is_admin: false,
                    },
                )?
                .id)
            })
            .expect("insert user")
    }
}
