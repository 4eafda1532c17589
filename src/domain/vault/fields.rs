//! Field schemas (docs/vault.md "Fields"): what a site's accounts' props must look like.
//!
//! A field has a type (`string`, `number`, `boolean`, `datetime` RFC 3339, `json`), and may be
//! required, have a default, a regex (strings; unanchored, Rust `regex` syntax, linear time),
//! choices (strings and numbers), be secret (strings: sealed at rest, masked, blind-indexed) or
//! indexed (plain props: an expression index), and carry a display order and a UI hint.
//! Regexes run with ASCII semantics (`values`).
//! `Schema::check` validates a whole props object on every write and returns it normalized
//! (defaults filled in, date-times in the stored UTC form) or every problem by prop. A site
//! without fields keeps any props; the one prop with a meaning of its own, `expiresAt`, is
//! always a date-time.

use super::values::{compile, datetime};
use crate::db::vault::is_prop_name;
use crate::db::vault::sites::FieldRow;
use crate::domain::policy::{
    VAULT_MAX_CHOICES, VAULT_MAX_FIELDS, VAULT_MAX_INDEXED_PER_SITE, VAULT_MAX_PROPS,
    VAULT_MAX_PROPS_BYTES, VAULT_MAX_SECRET_BYTES,
};
use crate::domain::text;
use crate::error::{ApiError, ApiResult};
use regex_lite::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The prop the expiring-soon query reads; always a date-time.
pub const EXPIRES_AT: &str = "expiresAt";

/// The type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Number,
    Boolean,
    /// RFC 3339 (`2026-01-20T10:00:00Z`, or with an offset); stored in UTC with milliseconds.
    Datetime,
    /// Any JSON value.
    Json,
}

impl FieldType {
    /// The name stored in `site_fields.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Datetime => "datetime",
            FieldType::Json => "json",
        }
    }

    fn parse(s: &str) -> Option<FieldType> {
        Some(match s {
            "string" => FieldType::String,
            "number" => FieldType::Number,
            "boolean" => FieldType::Boolean,
            "datetime" => FieldType::Datetime,
            "json" => FieldType::Json,
            _ => return None,
        })
    }
}

/// One field of a site, as the API takes and shows it. Unknown options are refused (a typo in
/// a schema must not pass silently).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// The prop name: an ASCII identifier of 1–64 characters (`[A-Za-z_][A-Za-z0-9_]*`).
    #[serde(alias = "field")]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// A write without this prop (and no default) is refused.
    #[serde(default)]
    pub required: bool,
    /// Used when a write omits the prop; must itself be valid. Not for secret fields.
    #[serde(default)]
    pub default: Option<Value>,
    /// Strings only: the value must contain a match (anchor with `^…$` for a whole match).
    /// Rust `regex` syntax with ASCII classes: `\d`, `\w`, `\s` and `(?i)` are ASCII; other
    /// characters match themselves.
    #[serde(default)]
    pub regex: Option<String>,
    /// Strings and numbers: the value must be one of these. Not for secret fields.
    #[serde(default)]
    pub choices: Option<Vec<Value>>,
    /// Strings only: sealed at rest, masked in answers, looked up through the blind index.
    #[serde(default)]
    pub secret: bool,
    /// Plain props: give lookups by this prop an index of its own.
    #[serde(default)]
    pub indexed: bool,
    /// Display order (default: the position in the list).
    #[serde(default)]
    pub order: Option<i64>,
    /// A hint for a UI (`password`, `url`, `textarea`…), up to 64 characters.
    #[serde(default)]
    pub ui_hint: Option<String>,
}

/// A field with its regex compiled.
#[derive(Clone, Debug)]
pub struct Field {
    pub def: FieldDef,
    regex: Option<Regex>,
}

/// A site's fields, compiled. Empty: the site keeps any props.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub fields: Vec<Field>,
}

/// Per-prop problems, keyed as `VALIDATION_FAILED` details are (`props.token`, …).
pub type Problems = Map<String, Value>;

impl Schema {
    /// Validates field definitions (names, types and the options each type allows, defaults,
    /// regexes, limits) and compiles them. Errors: 422 with a detail per problem
    /// (`fields.<name>.<option>`).
    pub fn from_defs(defs: Vec<FieldDef>) -> ApiResult<Schema> {
        let mut p = Problems::new();
        if defs.len() > VAULT_MAX_FIELDS {
            p.insert(
                "fields".into(),
                json!(format!("at most {VAULT_MAX_FIELDS} fields")),
            );
        }
        let indexed = defs.iter().filter(|d| d.indexed).count();
        if indexed > VAULT_MAX_INDEXED_PER_SITE {
            p.insert(
                "fields".into(),
                json!(format!(
                    "at most {VAULT_MAX_INDEXED_PER_SITE} indexed fields"
                )),
            );
        }
        let mut fields: Vec<Field> = Vec::with_capacity(defs.len());
        for (i, mut d) in defs.into_iter().enumerate() {
            let name = d.name.clone();
            let at = |opt: &str| format!("fields.{name}.{opt}");
            if !is_prop_name(&d.name) {
                p.insert(
                    format!("fields[{i}].name"),
                    json!("must be an identifier of 1-64 ASCII letters, digits or _"),
                );
                continue;
            }
            if fields.iter().any(|f| f.def.name == d.name) {
                p.insert(at("name"), json!("appears twice"));
                continue;
            }
            let mut bad = |opt: &str, why: &str| {
                p.insert(at(opt), json!(why));
            };
            let string = d.kind == FieldType::String;
            if d.name == EXPIRES_AT && d.kind != FieldType::Datetime {
                bad("type", "expiresAt must be a datetime");
            }
            let mut regex = None;
            if let Some(r) = &d.regex {
                if !string {
                    bad("regex", "only string fields take a regex");
                } else {
                    match compile(r) {
                        Ok(re) => regex = Some(re),
                        Err(why) => bad("regex", &why),
                    }
                }
            }
            if d.secret {
                if !string {
                    bad("secret", "only string fields can be secret");
                }
                if d.default.is_some() {
                    bad(
                        "default",
                        "a secret field cannot have a default (it would be stored in plaintext)",
                    );
                }
                if d.choices.is_some() {
                    bad(
                        "choices",
                        "a secret field cannot have choices (they would be stored in plaintext)",
                    );
                }
                if d.indexed {
                    bad(
                        "indexed",
                        "secret fields are looked up through the blind index",
                    );
                }
            }
            if let Some(c) = &d.choices {
                if !matches!(d.kind, FieldType::String | FieldType::Number) {
                    bad("choices", "only string and number fields take choices");
                } else if c.is_empty() || c.len() > VAULT_MAX_CHOICES {
                    bad(
                        "choices",
                        &format!("must list 1-{VAULT_MAX_CHOICES} values"),
                    );
                }
            }
            if let Some(h) = &d.ui_hint
                && text::name("ui_hint", h, 64).is_err()
            {
                bad("ui_hint", "must be 1-64 visible characters");
            }
            let mut f = Field {
                def: FieldDef {
                    order: Some(d.order.unwrap_or(i as i64)),
                    default: None,
                    ..d.clone()
                },
                regex,
            };
            if let Some(c) = d.choices.take() {
                let mut ok = Vec::with_capacity(c.len());
                for v in c {
                    match f.check_value(&v, false) {
                        Ok(v) => ok.push(v),
                        Err(why) => bad("choices", &format!("{v}: {why}")),
                    }
                }
                f.def.choices = Some(ok);
            }
            if let Some(v) = d.default.take().filter(|v| !v.is_null()) {
                match f.check_value(&v, true) {
                    Ok(v) => f.def.default = Some(v),
                    Err(why) => bad("default", &why),
                }
            }
            fields.push(f);
        }
        if !p.is_empty() {
            return Err(ApiError::invalid_fields(p));
        }
        fields.sort_by(|a, b| (a.def.order, &a.def.name).cmp(&(b.def.order, &b.def.name)));
        Ok(Schema { fields })
    }

    /// The schema stored for a site. Errors: 500 if a stored row no longer compiles.
    pub fn from_rows(rows: &[FieldRow]) -> ApiResult<Schema> {
        let defs = rows
            .iter()
            .map(|r| {
                Ok(FieldDef {
                    name: r.field.clone(),
                    kind: FieldType::parse(&r.kind)
                        .ok_or_else(|| ApiError::internal(format!("field type {:?}", r.kind)))?,
                    required: r.required,
                    default: r
                        .default_value
                        .as_deref()
                        .and_then(|t| serde_json::from_str(t).ok()),
                    regex: r.regex.clone(),
                    choices: r
                        .choices
                        .as_deref()
                        .and_then(|t| serde_json::from_str(t).ok()),
                    secret: r.secret,
                    indexed: r.indexed,
                    order: Some(r.sort_order),
                    ui_hint: r.ui_hint.clone(),
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Schema::from_defs(defs).map_err(|e| ApiError::internal(format!("stored fields: {e}")))
    }

    /// The rows `site_fields` stores for this schema.
    pub fn to_rows(&self) -> Vec<FieldRow> {
        let text = |v: &Value| serde_json::to_string(v).ok();
        self.fields
            .iter()
            .map(|f| FieldRow {
                field: f.def.name.clone(),
                kind: f.def.kind.as_str().into(),
                required: f.def.required,
                default_value: f.def.default.as_ref().and_then(text),
                regex: f.def.regex.clone(),
                choices: f
                    .def
                    .choices
                    .as_ref()
                    .and_then(|c| text(&Value::from(c.clone()))),
                secret: f.def.secret,
                indexed: f.def.indexed,
                sort_order: f.def.order.unwrap_or(0),
                ui_hint: f.def.ui_hint.clone(),
            })
            .collect()
    }

    /// The definitions, in display order.
    pub fn defs(&self) -> Vec<FieldDef> {
        self.fields.iter().map(|f| f.def.clone()).collect()
    }

    /// Is the prop `name` secret here?
    pub fn is_secret(&self, name: &str) -> bool {
        self.fields
            .iter()
            .any(|f| f.def.secret && f.def.name == name)
    }

    /// Validates a whole props object for storage: unknown props refused when the site has
    /// fields, `null` meaning absent, defaults filled in, every present value checked against
    /// its field, date-times normalized to the stored UTC form. Returns the props to store, or
    /// every problem keyed `props.<name>`.
    pub fn check(&self, props: Map<String, Value>) -> Result<Map<String, Value>, Problems> {
        let mut p = Problems::new();
        let mut out = Map::new();
        let key = |n: &str| format!("props.{n}");
        for (name, v) in props {
            if v.is_null() {
                continue;
            }
            if !is_prop_name(&name) {
                p.insert(key(&name), json!("is not a valid prop name (an identifier of 1-64 ASCII letters, digits or _)"));
                continue;
            }
            if self.fields.is_empty() {
                let v = if name == EXPIRES_AT {
                    match datetime(&v) {
                        Ok(t) => Value::String(t),
                        Err(why) => {
                            p.insert(key(&name), json!(why));
                            continue;
                        }
                    }
                } else {
                    v
                };
                out.insert(name, v);
                continue;
            }
            let Some(f) = self.fields.iter().find(|f| f.def.name == name) else {
                p.insert(key(&name), json!("is not a field of this site"));
                continue;
            };
            match f.check_value(&v, true) {
                Ok(v) => {
                    out.insert(name, v);
                }
                Err(why) => {
                    p.insert(key(&name), json!(why));
                }
            }
        }
        for f in &self.fields {
            if out.contains_key(&f.def.name) || p.contains_key(&key(&f.def.name)) {
                continue;
            }
            match &f.def.default {
                Some(d) => {
                    out.insert(f.def.name.clone(), d.clone());
                }
                None if f.def.required => {
                    p.insert(key(&f.def.name), json!("is required"));
                }
                None => {}
            }
        }
        if out.len() > VAULT_MAX_PROPS {
            p.insert(
                "props".into(),
                json!(format!("at most {VAULT_MAX_PROPS} props")),
            );
        } else if serde_json::to_string(&out).map_or(0, |s| s.len()) > VAULT_MAX_PROPS_BYTES {
            p.insert(
                "props".into(),
                json!(format!("at most {VAULT_MAX_PROPS_BYTES} bytes of props")),
            );
        }
        if p.is_empty() { Ok(out) } else { Err(p) }
    }
}

impl Field {
    /// Checks one value against this field; returns it normalized. `choices` applies only when
    /// `with_choices` (a choice is checked without them).
    fn check_value(&self, v: &Value, with_choices: bool) -> Result<Value, String> {
        let d = &self.def;
        let v = match d.kind {
            FieldType::String => {
                let s = v.as_str().ok_or("must be a string")?;
                let max = if d.secret {
                    VAULT_MAX_SECRET_BYTES
                } else {
                    VAULT_MAX_PROPS_BYTES
                };
                if s.len() > max {
                    return Err(format!("must be at most {max} bytes"));
                }
                if let Some(re) = &self.regex
                    && !re.is_match(s)
                {
                    return Err(format!("does not match {}", re.as_str()));
                }
                v.clone()
            }
            FieldType::Number => {
                v.as_f64().ok_or("must be a number")?;
                v.clone()
            }
            FieldType::Boolean => Value::Bool(v.as_bool().ok_or("must be true or false")?),
            FieldType::Datetime => Value::String(datetime(v)?),
            FieldType::Json => v.clone(),
        };
        if with_choices && let Some(c) = &d.choices {
            let same = |a: &Value| match (a.as_f64(), v.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => *a == v,
            };
            if !c.iter().any(same) {
                let list: Vec<String> = c.iter().map(Value::to_string).collect();
                return Err(format!("must be one of {}", list.join(", ")));
            }
        }
        Ok(v)
    }
}
