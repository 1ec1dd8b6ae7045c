//! Tokens for tests of token mode: HS256 with [`SECRET`], minted the way an operator's login
//! service would, and a server that checks them.

use std::time::Duration;

use chatterbox::admission::{TokenMinter, TokenRequest};

use super::TestServer;

/// The `AUTH_SECRET` of [`token_server`].
pub const SECRET: &str = "an-integration-test-secret-of-32-bytes";

/// A token for `user`, valid for `ttl`.
pub fn token(user: &str, ttl: Duration) -> String {
    let minter = TokenMinter::hs256(SECRET).unwrap();
    minter.mint(&TokenRequest::new(user, ttl)).unwrap()
}

/// A server in token mode with [`SECRET`].
pub async fn token_server() -> TestServer {
    TestServer::start_with(|c| c.auth.auth_secret = Some(SECRET.into())).await
}
