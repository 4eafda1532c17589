//! SQL for the Vault (schema.sql "Vault"; docs/vault.md): `sites` and `site_fields`, the
//! active-account mapping and the server-managed prop indexes (`sites`), `accounts` with their
//! blind index and the lookup query (`accounts`), and the record of reveals (`reveals`).
//!
//! Every statement is scoped by `user_id`: a site key or account id is only ever looked up
//! inside its owner's rows. Nothing here seals, opens or validates; the domain does
//! (`domain::vault`).

pub mod accounts;
pub mod reveals;
pub mod sites;

/// Is `name` a prop name this server accepts: an ASCII identifier of 1–64 characters
/// (`[A-Za-z_][A-Za-z0-9_]*`)? Only such names are written into a JSON path (`'$.name'`) or an
/// index name, so they never need quoting.
pub fn is_prop_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The JSON path of a prop in `accounts.extra`, as the expression indexes spell it: `$.name`.
/// `None` for a name `is_prop_name` refuses.
pub fn prop_path(name: &str) -> Option<String> {
    is_prop_name(name).then(|| format!("$.{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prop_names_are_identifiers() {
        for ok in ["token", "expiresAt", "_x", "a1_b2", &"x".repeat(64)] {
            assert!(is_prop_name(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "a-b",
            "a.b",
            "a b",
            "é",
            "a'",
            "a\"",
            &"x".repeat(65),
        ] {
            assert!(!is_prop_name(bad), "{bad}");
        }
        assert_eq!(prop_path("token").as_deref(), Some("$.token"));
        assert_eq!(prop_path("a') --"), None);
    }
}
