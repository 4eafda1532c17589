//! The README's "Walk-through: a command by e-mail" runs as written (bash, curl, jq and openssl):
//! its third terminal's block, against a server sending through the tests' fake relay (the same
//! file as `cargo run --example relay`, which the first two terminals start) with the walk-through's
//! settings: the `webhook` provider and a random inbound secret.

use crate::common::TestServer;
use crate::mail_util::{Answer, FakeRelay, SECRET, use_relay};
use ccjk_cloud::config::Provider;
use std::time::Duration;

/// The section's client block, with the server's address in place of the walk-through's and the
/// secret the server was given.
fn script(base: &str) -> String {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("\n## Walk-through: a command by e-mail\n")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(2))
        .and_then(|b| b.split("\n```").next())
        .expect("the third terminal's shell block");
    assert!(block.contains("S=http://127.0.0.1:3000;"), "{block}");
    format!(
        "SECRET='{SECRET}'\n{}\n",
        block.replace("S=http://127.0.0.1:3000;", &format!("S={base};"))
    )
}

#[test]
fn the_readme_mail_walkthrough_runs() {
    let relay = FakeRelay::start(Answer::json(200, r#"{"id":"local-1"}"#));
    let s = TestServer::start_with(|c| use_relay(c, &relay, Provider::Webhook));
    let stdout = crate::common::run_bash(&script(s.base()));
    // Accepted once, a duplicate the second time, and the daemon's result stored.
    assert!(stdout.contains(r#""status": "accepted""#), "{stdout}");
    assert!(
        stdout.contains("\ntrue\n"),
        "the redelivery is a duplicate:\n{stdout}"
    );
    assert!(stdout.contains(r#""completed""#), "{stdout}");
    // The reply reaches the relay in the generic webhook's shape, threaded under the mail.
    let reqs = relay.wait_for(1, Duration::from_secs(10));
    let reply = reqs[0].json();
    assert_eq!(reqs[0].path, "/hook");
    assert_eq!(reply["to"], "me@example.com", "{reply}");
    assert_eq!(reply["subject"], "Re: [CCJK:laptop] disk space", "{reply}");
    assert_eq!(reply["in_reply_to"], "<walk-1@example.com>", "{reply}");
    let text = reply["text"].as_str().expect("text");
    assert!(text.contains("df -h /") && text.contains("42%"), "{text}");
    assert_eq!(
        relay.requests().len(),
        1,
        "one reply, whatever the redelivery"
    );
}
