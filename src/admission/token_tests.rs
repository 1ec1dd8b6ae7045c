use std::path::PathBuf;

use super::*;

const SECRET: &str = "a-test-secret-that-is-32-bytes-long!";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn auth() -> AuthConfig {
    let mut config = crate::Config::default();
    config.auth.auth_secret = Some(SECRET.into());
    config.auth.auth_public_key = None;
    config.auth.auth_audience = None;
    config.auth.auth_issuer = None;
    config.auth
}

fn verifier(auth: &AuthConfig) -> TokenVerifier {
    TokenVerifier::from_config(auth).unwrap().unwrap()
}

/// A token with hand-made claims, signed with `secret`.
fn signed(claims: serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_valid_token_names_the_user_and_its_rooms() {
    let minter = TokenMinter::hs256(SECRET).unwrap();
    let mut request = TokenRequest::new("alice", Duration::from_secs(60));
    request.rooms = Some(vec!["team-*".into(), "lobby".into()]);
    let token = minter.mint(&request).unwrap();
    let (user, grant) = verifier(&auth()).verify(&token).unwrap();
    assert_eq!(user, "alice");
    let rooms = grant.rooms.unwrap();
    assert!(rooms.allows("team-red") && rooms.allows("lobby"));
    assert!(!rooms.allows("general") && !rooms.allows("lobby2"));
    assert!(grant.expires_at > unix_now());
}

#[test]
fn every_way_a_token_can_be_wrong() {
    let auth = auth();
    let verifier = verifier(&auth);
    let now = unix_now();
    let check = |token: &str| verifier.verify(token).map(|_| ()).unwrap_err();
    assert_eq!(check("not a token"), TokenError::Malformed);
    let expired = signed(serde_json::json!({"sub":"a","exp": now - 120}), SECRET);
    assert_eq!(check(&expired), TokenError::Expired);
    let within_leeway = signed(serde_json::json!({"sub":"a","exp": now - 5}), SECRET);
    assert!(
        verifier.verify(&within_leeway).is_ok(),
        "30 s of clock skew tolerated"
    );
    let early = signed(
        serde_json::json!({"sub":"a","exp": now + 600,"nbf": now + 300}),
        SECRET,
    );
    assert_eq!(check(&early), TokenError::NotYetValid);
    let forged = signed(
        serde_json::json!({"sub":"a","exp": now + 60}),
        "another-secret-also-32-bytes-long!!",
    );
    assert_eq!(check(&forged), TokenError::BadSignature);
    let no_exp = signed(serde_json::json!({"sub":"a"}), SECRET);
    assert_eq!(check(&no_exp), TokenError::MissingClaim("exp".into()));
    let null_rooms = signed(
        serde_json::json!({"sub":"a","exp": now + 60,"rooms": null}),
        SECRET,
    );
    assert_eq!(
        check(&null_rooms),
        TokenError::Malformed,
        "null is not \"any room\""
    );
    let wrong_rooms = signed(
        serde_json::json!({"sub":"a","exp": now + 60,"rooms": "team-*"}),
        SECRET,
    );
    assert_eq!(check(&wrong_rooms), TokenError::Malformed);
    let no_sub = signed(serde_json::json!({"exp": now + 60}), SECRET);
    assert_eq!(check(&no_sub), TokenError::MissingClaim("sub".into()));
    // alg "none": header {"alg":"none"}, no signature.
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(r#"{{"sub":"a","exp":{}}}"#, now + 60))
    );
    assert!(matches!(
        check(&none),
        TokenError::Malformed | TokenError::WrongAlgorithm
    ));
    let rs256 = TokenMinter::from_private_pem(
        PublicKeyAlgorithm::Rs256,
        &std::fs::read(fixture("rs256-private.pem")).unwrap(),
    )
    .unwrap()
    .mint(&TokenRequest::new("a", Duration::from_secs(60)))
    .unwrap();
    assert_eq!(
        check(&rs256),
        TokenError::WrongAlgorithm,
        "only HS256 is configured"
    );
}

#[test]
fn audience_and_issuer_when_configured() {
    let mut auth = auth();
    auth.auth_audience = Some("chat".into());
    auth.auth_issuer = Some("https://login.example".into());
    let verifier = verifier(&auth);
    let now = unix_now();
    let good = signed(
        serde_json::json!({"sub":"a","exp":now+60,"aud":"chat","iss":"https://login.example"}),
        SECRET,
    );
    assert!(verifier.verify(&good).is_ok());
    let bad_aud = signed(
        serde_json::json!({"sub":"a","exp":now+60,"aud":"other","iss":"https://login.example"}),
        SECRET,
    );
    assert_eq!(verifier.verify(&bad_aud).unwrap_err(), TokenError::Audience);
    let bad_iss = signed(
        serde_json::json!({"sub":"a","exp":now+60,"aud":"chat","iss":"https://evil.example"}),
        SECRET,
    );
    assert_eq!(verifier.verify(&bad_iss).unwrap_err(), TokenError::Issuer);
    let missing = signed(serde_json::json!({"sub":"a","exp":now+60}), SECRET);
    assert!(matches!(
        verifier.verify(&missing).unwrap_err(),
        TokenError::MissingClaim(_)
    ));
}

/// RS256 and ES256 with a configured public key; a token signed HS256 with the *public key
/// as secret* (the classic algorithm-confusion attack) is refused.
#[test]
fn public_keys_and_no_algorithm_confusion() {
    for (algorithm, name) in [
        (PublicKeyAlgorithm::Rs256, "rs256"),
        (PublicKeyAlgorithm::Es256, "es256"),
    ] {
        let mut auth = auth();
        auth.auth_secret = None;
        auth.auth_public_key = Some(fixture(&format!("{name}-public.pem")));
        auth.auth_public_key_algorithm = algorithm;
        let verifier = verifier(&auth);
        let private = std::fs::read(fixture(&format!("{name}-private.pem"))).unwrap();
        let token = TokenMinter::from_private_pem(algorithm, &private)
            .unwrap()
            .mint(&TokenRequest::new("bob", Duration::from_secs(60)))
            .unwrap();
        assert_eq!(verifier.verify(&token).unwrap().0, "bob");
        let public = std::fs::read_to_string(fixture(&format!("{name}-public.pem"))).unwrap();
        let confused = signed(
            serde_json::json!({"sub":"bob","exp":unix_now()+60}),
            &public,
        );
        assert_eq!(
            verifier.verify(&confused).unwrap_err(),
            TokenError::WrongAlgorithm
        );
    }
}

#[test]
fn patterns_are_normalised_like_room_names() {
    let patterns = RoomPatterns::new(vec!["ｔｅａｍ-*".into(), "ｌｏｂｂｙ".into()]);
    assert!(patterns.allows("team-red") && patterns.allows("lobby"));
}

#[test]
fn globs() {
    assert!(glob_matches("team-*", "team-"));
    assert!(glob_matches("*", "anything"));
    assert!(glob_matches("a*b*c", "a-b-c") && glob_matches("a*b*c", "abc"));
    assert!(!glob_matches("a*b*c", "a-c"));
    assert!(!glob_matches("*-x", "x"));
    assert!(glob_matches("exact", "exact") && !glob_matches("exact", "exact2"));
}

/// Base64url without padding, as JWTs use (a test needs it for a hand-made `none` token).
fn b64(s: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
