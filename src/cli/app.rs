//! `ccjk-cloud app create|list|delete` (README "Apps and the KV store"): the admin's registry
//! of the apps that may be authorised on devices; the same domain functions as the routes.

use crate::config::Config;
use crate::db::{self, Db};
use crate::domain::apps::{self, AppInput};

/// `app create --name N --developer D [--homepage URL] [--developer-link URL] [--description T]`
/// (prints the id and the site key), `app list` (with site keys and token counts), `app delete
/// ID` (its tokens are refused from the next request; the keys it wrote stay with the devices).
pub fn run(cfg: &Config, args: &[String]) -> Result<(), String> {
    let opt = |name: &str| crate::cli::option(args, name);
    let db = Db::open(&cfg.db_path, cfg.synchronous).map_err(|e| e.to_string())?;
    let usage = "usage: ccjk-cloud app create --name NAME --developer NAME [--homepage URL] \
                 [--developer-link URL] [--description TEXT] | app list | app delete ID";
    match args.first().map(String::as_str) {
        Some("create") => {
            let input = AppInput {
                name: opt("--name").ok_or("app create needs --name NAME")?,
                developer_name: opt("--developer").ok_or("app create needs --developer NAME")?,
                homepage_link: opt("--homepage"),
                developer_link: opt("--developer-link"),
                description: opt("--description"),
            };
            let a = apps::create(&db, &input).map_err(|e| e.message)?;
            println!("app {} ({}) by {}", a.id, a.name, a.developer_name);
            println!("site key: {}", a.site_key);
            Ok(())
        }
        Some("list") => {
            let reader = db.reader().map_err(|e| e.to_string())?;
            println!(
                "{:>5}  {:<24} {:<20} {:<37} {:>6} created_at",
                "id", "name", "developer", "site_key", "tokens"
            );
            for (a, tokens) in db::apps::list_with_tokens(&reader).map_err(|e| e.to_string())? {
                println!(
                    "{:>5}  {:<24} {:<20} {:<37} {:>6} {}",
                    a.id, a.name, a.developer_name, a.site_key, tokens, a.created_at
                );
            }
            Ok(())
        }
        Some("delete") => {
            let id = args
                .get(1)
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or("usage: ccjk-cloud app delete ID")?;
            if apps::delete(&db, id).map_err(|e| e.message)? {
                println!("deleted app {id}; its tokens no longer work");
                Ok(())
            } else {
                Err("no app with that id".into())
            }
        }
        _ => Err(usage.into()),
    }
}
