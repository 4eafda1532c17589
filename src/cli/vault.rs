//! `ccjk-cloud vault export|import` (README "Vault", docs/vault.md "Export and import"): a
//! user's sites and accounts as one JSON document, and back.
//!
//! `export` keeps secrets sealed under the server key unless `--plaintext`, which asks for a
//! confirmation on a terminal (or takes `--yes`) and records a reveal of every account it
//! shows. `--out FILE` writes a new file readable by its owner only; otherwise the document goes
//! to stdout. `import FILE` (or `-` for stdin) restores a document into a user's vault; a site
//! the user already has is refused unless `--replace`.

use crate::config::Config;
use crate::db::users;
use crate::domain::vault::transfer::{self, Export};
use crate::domain::{Cx, text};
use std::io::{IsTerminal, Read, Write};

/// Usage of the vault commands.
pub const USAGE: &str = "usage: ccjk-cloud vault export --user EMAIL [--plaintext [--yes]] [--out FILE]\n       \
     ccjk-cloud vault import --user EMAIL FILE|- [--replace]";

/// Runs `vault …` with its arguments (flags as `--name value` pairs, `--plaintext`, `--yes`
/// and `--replace` alone).
pub fn run(cfg: &Config, args: &[String]) -> Result<(), String> {
    let opt = |name: &str| crate::cli::option(args, name);
    let flag = |name: &str| args.iter().any(|a| a == name);
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--plaintext" | "--yes" | "--replace" => i += 1,
            a if a.starts_with("--") => i += 2,
            a => {
                positional.push(a.to_string());
                i += 1;
            }
        }
    }
    let email = opt("--user").ok_or(USAGE)?;
    match positional.first().map(String::as_str) {
        Some("export") if positional.len() == 1 => export(
            cfg,
            &email,
            flag("--plaintext"),
            flag("--yes"),
            opt("--out"),
        ),
        Some("import") if positional.len() == 2 => {
            import(cfg, &email, &positional[1], flag("--replace"))
        }
        _ => Err(USAGE.into()),
    }
}

/// Asks on the terminal before a plaintext export; refuses without a terminal unless `yes`.
fn confirm_plaintext(yes: bool) -> Result<(), String> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(
            "--plaintext writes every password and secret in the clear: run it on a terminal to \
             confirm, or add --yes"
                .into(),
        );
    }
    eprint!(
        "This writes every password and secret of the user in the clear. Type 'yes' to go on: "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err("not confirmed; nothing exported".into())
    }
}

fn with_user<T>(
    cfg: &Config,
    email: &str,
    f: impl FnOnce(&Cx, i64) -> Result<T, String>,
) -> Result<T, String> {
    let svc = crate::services(cfg.clone())?;
    let reader = svc.db.reader().map_err(|e| e.to_string())?;
    let cx = Cx::new(&svc, &reader);
    let user = users::find_for_login(&reader, email, &text::email_key(email))
        .map_err(|e| e.to_string())?
        .map(|(u, _)| u)
        .ok_or("no user with that email")?;
    f(&cx, user.id)
}

fn export(
    cfg: &Config,
    email: &str,
    plaintext: bool,
    yes: bool,
    out: Option<String>,
) -> Result<(), String> {
    if plaintext {
        confirm_plaintext(yes)?;
    }
    let doc = with_user(cfg, email, |cx, id| {
        transfer::export(cx, id, plaintext).map_err(|e| e.message)
    })?;
    let mut text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    text.push('\n');
    let accounts: usize = doc.sites.iter().map(|s| s.accounts.len()).sum();
    match out {
        Some(path) => {
            let path = std::path::Path::new(&path);
            if path.exists() {
                return Err(format!("{} exists; choose a new file", path.display()));
            }
            crate::db::create_private(path)
                .and_then(|()| std::fs::write(path, text.as_bytes()))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?,
    }
    eprintln!(
        "exported {} site(s), {accounts} account(s) for {email}, secrets {}",
        doc.sites.len(),
        if plaintext { "IN PLAINTEXT" } else { "sealed" }
    );
    Ok(())
}

fn import(cfg: &Config, email: &str, file: &str, replace: bool) -> Result<(), String> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
    } else {
        text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    }
    let doc: Export =
        serde_json::from_str(&text).map_err(|e| format!("{file} is not a vault export: {e}"))?;
    let n = with_user(cfg, email, |cx, id| {
        transfer::import(cx, id, doc, replace).map_err(|e| e.message)
    })?;
    println!(
        "imported {} site(s), {} account(s) for {email}",
        n.sites, n.accounts
    );
    Ok(())
}
