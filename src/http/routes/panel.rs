//! The web panel (README "Web panel"): `GET /` and `GET /assets/{name}` serve the page, its
//! script and style and the vendored chart library, all embedded in the binary at build time
//! (`include_str!`), with a strict `Content-Security-Policy`: scripts, styles and connections
//! from this origin only, nothing inline, no framing. The panel talks to `/v1` with the login
//! cookie (`/v1/panel/*`, `http::cookie`).

use crate::error::{ApiError, ApiResult};
use crate::http::Reply;
use crate::http::route::{Call, Out, Route, get};

/// What every panel page and asset is served with. `img-src data:` is for the page's empty
/// favicon; `style-src 'self'` holds because the scripts only set styles through the DOM.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The embedded files: name, content type, content.
const ASSETS: [(&str, &str, &str); 5] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../panel/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../panel/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../panel/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../../panel/vendor/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("../../panel/vendor/uPlot.LICENSE"),
    ),
];

const INDEX: &str = include_str!("../../panel/index.html");

/// The OpenAPI tag of the panel's routes; their errors answer in the Lite envelope, the
/// family their unprefixed paths fall in.
pub const PANEL_TAG: &str = "panel";

/// The panel's routes.
#[rustfmt::skip]
pub fn routes() -> Vec<Route> {
    vec![
        get("/").raw("text/html; charset=utf-8").tag(PANEL_TAG)
            .to_out("The web panel", index),
        get("/assets/{name}").raw("text/*").tag(PANEL_TAG)
            .to_out("The web panel's scripts, styles and vendored chart library", asset),
    ]
}

/// A panel reply: the content with the security headers every panel response carries.
fn page(content_type: &'static str, body: &str) -> Reply {
    let mut r = Reply::text(200, body.as_bytes().to_vec());
    r.content_type = content_type;
    r.headers.extend([
        ("Content-Security-Policy", CSP.to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("X-Frame-Options", "DENY".to_string()),
        ("Referrer-Policy", "no-referrer".to_string()),
    ]);
    r
}

/// `GET /`: the page.
fn index(_: &Call, _: ()) -> ApiResult<Out<()>> {
    Ok(Out::Reply(page("text/html; charset=utf-8", INDEX)))
}

/// `GET /assets/{name}`. Errors: 404 for a name that is not embedded.
fn asset(call: &Call, _: ()) -> ApiResult<Out<()>> {
    let name = call.param("name");
    let (_, ct, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ApiError::not_found("Asset"))?;
    Ok(Out::Reply(page(ct, body)))
}
