//! The long-poll dispatcher (docs/tasks.md "Long-poll"): one `ccjk-dispatcher` thread that
//! re-checks parked polls when they are woken or due, answers them, or parks them again. It
//! ends once the registry is closed and emptied (shutdown answers every parked poll).

use crate::domain::Cx;
use crate::error::ApiError;
use crate::http::app::App;
use crate::http::server::{error_reply, finish};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

/// Starts the dispatcher.
pub fn spawn(app: Arc<App>) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("ccjk-dispatcher".into())
        .spawn(move || {
            let conn = match app.svc.db.reader() {
                Ok(c) => c,
                Err(e) => return log::error!("dispatcher cannot open the database: {e}"),
            };
            let cx = Cx::new(&app.svc, &conn);
            loop {
                let (ready, closing) = app.polls.due();
                let now = Instant::now();
                for p in ready {
                    let last = closing || p.park.deadline <= now;
                    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        (p.park.recheck)(&cx, &p.req, last)
                    }))
                    .unwrap_or_else(|_| {
                        let e = ApiError::internal("panic in a parked poll");
                        Some(error_reply(&p.req, &e))
                    });
                    match reply {
                        Some(r) => finish(p.raw, r, &p.info),
                        None => {
                            if let Err(p) = app.polls.repark(p) {
                                let r = (p.park.recheck)(&cx, &p.req, true).unwrap_or_else(|| {
                                    error_reply(&p.req, &ApiError::unavailable("Shutting down", 5))
                                });
                                finish(p.raw, r, &p.info);
                            }
                        }
                    }
                }
                if closing {
                    return;
                }
            }
        })
}
