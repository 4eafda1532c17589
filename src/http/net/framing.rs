//! Which requests have ambiguous framing: the headers that say where a body ends.
//!
//! tiny_http 0.12 reads a request with both `Content-Length` and `Transfer-Encoding` as chunked,
//! uses the first of two `Content-Length` headers, applies the chunked decoder to any
//! `Transfer-Encoding` value, and treats a `Content-Length` it cannot parse as "no body". A proxy
//! in front that reads any of these differently sees a different next request on the same
//! connection than we do (request smuggling). Such requests are refused with 400 and their
//! connection is closed (`Net::close_with`), as RFC 9112 §6.3 asks of a server.

use tiny_http::Header;

/// `Err(why)` if the request's body framing is ambiguous; `why` is safe to show the client.
pub fn check(headers: &[Header]) -> Result<(), &'static str> {
    let mut lengths = 0;
    let mut encodings = 0;
    for h in headers {
        if h.field.equiv("Content-Length") {
            lengths += 1;
            let v = h.value.as_str();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err("Content-Length is not a number");
            }
        } else if h.field.equiv("Transfer-Encoding") {
            encodings += 1;
            if !h.value.as_str().eq_ignore_ascii_case("chunked") {
                return Err("Only Transfer-Encoding: chunked is supported");
            }
        }
    }
    match (lengths, encodings) {
        (0 | 1, 0) | (0, 1) => Ok(()),
        (_, 0) => Err("More than one Content-Length header"),
        (0, _) => Err("More than one Transfer-Encoding header"),
        _ => Err("Both Content-Length and Transfer-Encoding"),
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use tiny_http::Header;

    fn headers(list: &[(&str, &str)]) -> Vec<Header> {
        list.iter()
            .map(|(k, v)| Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("header"))
            .collect()
    }

    #[test]
    fn one_length_or_one_chunked_encoding_is_fine() {
        for ok in [
            vec![],
            vec![("Content-Length", "0")],
            vec![("content-length", "5000"), ("Host", "x")],
            vec![("Transfer-Encoding", "chunked")],
            vec![("transfer-encoding", "Chunked")],
        ] {
            assert_eq!(check(&headers(&ok)), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn every_ambiguous_framing_is_refused() {
        for bad in [
            vec![("Content-Length", "5"), ("Content-Length", "5")],
            vec![("Content-Length", "5"), ("content-length", "50")],
            vec![("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
            vec![("Transfer-Encoding", "chunked"), ("Content-Length", "5")],
            vec![("Transfer-Encoding", "gzip, chunked")],
            vec![("Transfer-Encoding", "identity")],
            vec![
                ("Transfer-Encoding", "chunked"),
                ("Transfer-Encoding", "chunked"),
            ],
            vec![("Content-Length", "+5")],
            vec![("Content-Length", "5, 5")],
            vec![("Content-Length", "0x10")],
            vec![("Content-Length", "")],
        ] {
            assert!(check(&headers(&bad)).is_err(), "{bad:?}");
        }
    }
}
