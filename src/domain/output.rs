//! The cap on a task's stdout and stderr (docs/tasks.md "Output"): each stream keeps its
//! first `policy::OUTPUT_HEAD` bytes, a `…[N bytes truncated]…` marker and its end.

use crate::domain::policy::OUTPUT_HEAD;

/// Caps one output stream at `cap` bytes: the first `OUTPUT_HEAD` bytes (at most half the
/// cap), a `…[N bytes truncated]…` marker, and the last part. Cuts only at character
/// boundaries.
pub fn cap_output(s: &str, cap: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= cap {
        return s.into();
    }
    let floor = |mut i: usize| {
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let ceil = |mut i: usize| {
        while !s.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    const MARKER_ROOM: usize = 48;
    let head = floor(OUTPUT_HEAD.min(cap / 2));
    let tail_start = ceil(s.len() - (cap - head - MARKER_ROOM));
    let dropped = tail_start - head;
    format!(
        "{}\n…[{dropped} bytes truncated]…\n{}",
        &s[..head],
        &s[tail_start..]
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::cap_output;

    #[test]
    fn output_cap_keeps_head_and_tail() {
        let s = format!(
            "{}{}{}",
            "a".repeat(70_000),
            "é".repeat(100_000),
            "z".repeat(70_000)
        );
        let cap = 128 * 1024;
        let out = cap_output(&s, cap);
        assert!(out.len() <= cap, "{}", out.len());
        assert!(out.starts_with(&"a".repeat(65_536)));
        assert!(out.ends_with(&"z".repeat(60_000)));
        assert!(out.contains("bytes truncated]"));
        assert_eq!(cap_output("short", cap), "short");
    }
}
