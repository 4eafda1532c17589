//! `multipart/form-data` request bodies (daemon log uploads), parsed with multer.
//!
//! The body has already been read under its route's cap (`Cap::Upload`), so nothing here can
//! grow past it. multer is asynchronous; its input here is a stream of slices of that body that
//! is always ready, so a minimal executor (a no-op waker, polled until ready) drives it on the
//! worker thread without a runtime. A body that is not multipart is 415; a malformed or
//! truncated one is 400; a part over its own limit is 413.

use crate::error::{ApiError, ApiResult, Code};
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Slices of the body handed to multer at a time.
const CHUNK: usize = 64 * 1024;
/// Polls that may come back `Pending` in a row before parsing is abandoned. Over an input that
/// is always ready none should; this only turns a bug into a 500 instead of a busy loop.
const MAX_PENDING: u32 = 1024;

/// One part of a form.
#[derive(Debug)]
pub struct Part {
    /// The part's `name`.
    pub name: String,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data` content type. Errors: 415.
pub fn boundary(content_type: Option<&str>) -> ApiResult<String> {
    let ct = content_type.unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "Content-Type must be multipart/form-data",
        ));
    }
    multer::parse_boundary(ct)
        .map_err(|_| ApiError::bad_request("multipart/form-data without a boundary"))
}

/// Drives `f` to completion on this thread. `None` if it keeps answering `Pending`.
fn block_on<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_PENDING {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}

/// Why a body is not a good form, for the client.
fn malformed(e: multer::Error) -> ApiError {
    ApiError::bad_request(format!("Malformed multipart body: {e}"))
}

/// The parts of `body` named in `wanted`, each at most its limit in bytes (parts with other
/// names are read past and dropped). Errors: 400 (malformed, truncated, a wanted part twice),
/// 413 (a part over its limit).
pub fn parts(body: &[u8], boundary: &str, wanted: &[(&str, usize)]) -> ApiResult<Vec<Part>> {
    let stream = futures_util::stream::iter(
        body.chunks(CHUNK)
            .map(|c| Ok::<Vec<u8>, std::io::Error>(c.to_vec())),
    );
    let mut form = multer::Multipart::new(stream, boundary);
    let read = async {
        let mut out: Vec<Part> = Vec::new();
        while let Some(mut field) = form.next_field().await.map_err(malformed)? {
            let name = field.name().unwrap_or("").to_string();
            let Some(&(_, limit)) = wanted.iter().find(|(n, _)| *n == name) else {
                while field.chunk().await.map_err(malformed)?.is_some() {}
                continue;
            };
            if out.iter().any(|p| p.name == name) {
                return Err(ApiError::bad_request(format!("Part {name} sent twice")));
            }
            let content_type = field.content_type().map(|m| m.essence_str().to_string());
            let mut data = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                if data.len() + chunk.len() > limit {
                    return Err(ApiError::too_large(limit)
                        .with_details(serde_json::json!({"limit": limit, "part": name})));
                }
                data.extend_from_slice(&chunk);
            }
            out.push(Part {
                name,
                content_type,
                data,
            });
        }
        Ok(out)
    };
    block_on(read).unwrap_or_else(|| Err(ApiError::internal("multipart parser did not finish")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: &[(&str, &[u8])], end: bool) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, data) in parts {
            b.extend_from_slice(
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"f\"\r\n\r\n")
                    .as_bytes(),
            );
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        if end {
            b.extend_from_slice(b"--XyZ--\r\n");
        }
        b
    }

    #[test]
    fn parts_are_read_and_limited() {
        let want = [("a", 10), ("b", 3)];
        let p = parts(
            &form(&[("a", b"hello"), ("zz", b"skip")], true),
            "XyZ",
            &want,
        )
        .expect("a form");
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].name.as_str(), p[0].data.as_slice()),
            ("a", &b"hello"[..])
        );
        let e = parts(&form(&[("b", b"toolong")], true), "XyZ", &want).expect_err("413");
        assert_eq!(e.status(), 413);
        let e = parts(&form(&[("a", b"x")], false), "XyZ", &want).expect_err("truncated");
        assert_eq!(e.status(), 400);
        let e = parts(b"garbage", "XyZ", &want).expect_err("garbage");
        assert_eq!(e.status(), 400);
        let big = vec![b'x'; 200_000];
        let p = parts(&form(&[("a", &big)], true), "XyZ", &[("a", 300_000)]).expect("chunks");
        assert_eq!(p[0].data, big);
    }

    #[test]
    fn boundaries_and_types() {
        assert_eq!(
            boundary(Some("multipart/form-data; boundary=abc")).expect("ok"),
            "abc"
        );
        assert_eq!(
            boundary(Some("application/json"))
                .expect_err("415")
                .status(),
            415
        );
        assert_eq!(boundary(None).expect_err("415").status(), 415);
        assert_eq!(
            boundary(Some("multipart/form-data"))
                .expect_err("400")
                .status(),
            400
        );
    }
}
