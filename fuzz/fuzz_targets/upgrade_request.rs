//! Admission on an arbitrary upgrade request: the URL's query (`user`, `token`, `resume`), the
//! `Host`, `Origin`, forwarded and subprotocol headers, and a bearer token, through `admit` and
//! `check_identity` in open mode and in token mode behind a trusted proxy. Whatever comes in,
//! admission answers with an admission or a refusal: it never panics.
//!
//! Input layout: byte 0 picks the mode (even = open, odd = token mode, trusting 127.0.0.0/8 with
//! `Forwarded` when bit 1 is set, else `X-Forwarded-For`); the rest are lines, the first the
//! request target (path and query), the others `name: value` headers (lines that are not a valid
//! header are skipped). `$TOKEN` anywhere is replaced by a token the server signed, so the
//! fuzzer explores what comes after a valid signature (names, claims, subprotocols) too.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use chatterbox::admission::{Admission, TokenMinter, TokenRequest};
use chatterbox::config::ForwardedHeader;
use http::{HeaderName, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzzing-secret-that-is-at-least-32-bytes";

struct Modes {
    open: Admission,
    token_xff: Admission,
    token_forwarded: Admission,
    token: String,
}

fn modes() -> &'static Modes {
    static MODES: OnceLock<Modes> = OnceLock::new();
    MODES.get_or_init(|| {
        let open = chatterbox::Config::default();
        let token_mode = |header| {
            let mut config = chatterbox::Config::default();
            config.auth.auth_secret = Some(SECRET.to_string());
            config.admission.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
            config.admission.forwarded_header = header;
            // Connect rates off, so every input reaches the identity checks.
            config.admission.max_connects_per_ip_per_second = 0;
            config.admission.resume_connects_per_ip_per_second = 0;
            Admission::new(&config, &[7; 32]).expect("token mode")
        };
        let mut request = TokenRequest::new("fuzzer", std::time::Duration::from_secs(3600));
        request.rooms = Some(vec!["lobby".into(), "team-*".into()]);
        Modes {
            open: Admission::new(&open, &[7; 32]).expect("open mode"),
            token_xff: token_mode(ForwardedHeader::XForwardedFor),
            token_forwarded: token_mode(ForwardedHeader::Forwarded),
            token: TokenMinter::hs256(SECRET)
                .expect("minter")
                .mint(&request)
                .expect("token"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let modes = modes();
    let admission = match (mode & 1, mode & 2) {
        (0, _) => &modes.open,
        (_, 0) => &modes.token_xff,
        _ => &modes.token_forwarded,
    };
    let text = String::from_utf8_lossy(rest).replace("$TOKEN", &modes.token);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("/ws");
    let Ok(mut request) = Request::builder().uri(target).body(()) else {
        return;
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_bytes(value.trim().as_bytes()),
        ) else {
            continue;
        };
        request.headers_mut().append(name, value);
    }
    let (parts, ()) = request.into_parts();
    let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
    let _ = admission.check_host(&parts.headers, peer);
    let _ = admission.check_identity(&parts, peer);
    let _ = admission.admit(&parts, peer, mode & 4 != 0);
});
