//! Tunnel URLs as they may be shown: scheme, host, port and the path kind, never the ids.
//!
//! The ids in `/cable/new/<tunnel id>`, `/cable/connect/<routing id>/<tunnel id>`,
//! `/cable/contact/<contact id>` and `/cable/listen/<contact id>` are what lets someone occupy
//! or join a live tunnel (or reach a linked phone), so errors, progress events and logs show
//! `wss://host/cable/connect/…` instead. User info, query and fragment are dropped too.
//!
//! What it is not: URL validation. It works on any string (an invalid URL is still shown
//! without its secrets).

/// Path kinds longer than this are not a `/cable/` kind we know: shown as `…` too.
const MAX_KIND_LEN: usize = 16;

/// `url` (or a bare path) without the secrets in it; see the module docs.
pub fn redact_url(url: &str) -> String {
    let (url, cut) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], true),
        None => (url, false),
    };
    // Drop `user:password@` from the authority.
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match rest.find("/cable/") {
        Some(i) => {
            out.push_str(&rest[..i]);
            out.push_str("/cable/");
            let after = &rest[i + "/cable/".len()..];
            match after.find('/') {
                Some(j) if j <= MAX_KIND_LEN => {
                    out.push_str(&after[..j]);
                    out.push_str("/…");
                }
                None if after.len() <= MAX_KIND_LEN && !cut => out.push_str(after),
                _ => out.push('…'),
            }
            return out;
        }
        None => out.push_str(rest),
    }
    if cut {
        out.push_str("?…");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn ids_user_info_and_queries_never_survive() {
        let tid = "0123456789ABCDEF0123456789ABCDEF";
        let cases = [
            (format!("wss://h.example/cable/new/{tid}"), "wss://h.example/cable/new/…"),
            (
                format!("ws://127.0.0.1:4242/cable/connect/A1B2C3/{tid}"),
                "ws://127.0.0.1:4242/cable/connect/…",
            ),
            (
                format!("wss://u:pw@h.example:8443/x/cable/contact/{tid}?a=b"),
                "wss://h.example:8443/x/cable/contact/…",
            ),
            (format!("/cable/listen/{tid}"), "/cable/listen/…"),
            (format!("wss://h.example/cable/{tid}{tid}/x"), "wss://h.example/cable/…"),
            ("wss://h.example/base?token=s3cret".to_owned(), "wss://h.example/base?…"),
            ("ws://127.0.0.1:9".to_owned(), "ws://127.0.0.1:9"),
            ("wss://h.example/cable/new".to_owned(), "wss://h.example/cable/new"),
            ("not a url/cable/new/SECRET".to_owned(), "not a url/cable/new/…"),
        ];
        for (url, want) in cases {
            let got = redact_url(&url);
            assert_eq!(got, want, "{url}");
            for secret in [tid, "pw", "s3cret", "A1B2C3", "SECRET"] {
                assert!(!got.contains(secret), "{got} leaks {secret}");
            }
        }
    }
}
