//! Resume tickets: proof that a client was connected, so it may come back first.
//!
//! A client that asks for one (`resume` in its upgrade URL) gets a `welcome` frame carrying a
//! ticket: a token signed with a key only the server has, naming the user and when it expires.
//! Presenting it on a later connection (`?resume=<ticket>`) puts the client ahead of new
//! arrivals when the server is full or over its accept budget. The key lives in the store, so
//! tickets survive the restart whose reconnect storm they are for (and are shared by every node
//! on one store).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::token::unix_now;

/// What a ticket says.
#[derive(Serialize, Deserialize)]
struct Ticket {
    sub: String,
    exp: u64,
    /// Marks the token as a resume ticket, so no other token signed with the key can pass.
    typ: String,
}

const TICKET_TYPE: &str = "chatterbox-resume";

/// Issues and checks resume tickets.
pub struct ResumeTickets {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl ResumeTickets {
    /// Tickets signed with `key` (the server's secret), valid for `ttl`.
    pub fn new(key: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = false;
        validation.leeway = 0; // the server signs and checks with one clock
        ResumeTickets {
            encoding: EncodingKey::from_secret(key).expect("the resume key is not empty"),
            decoding: DecodingKey::from_secret(key).expect("the resume key is not empty"),
            validation,
            ttl,
        }
    }

    /// A ticket for `user`.
    pub fn issue(&self, user: &str) -> String {
        let ticket = Ticket {
            sub: user.to_string(),
            exp: unix_now() + self.ttl.as_secs(),
            typ: TICKET_TYPE.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &ticket, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Whether `ticket` is a valid, unexpired ticket for `user`.
    pub fn is_valid_for(&self, ticket: &str, user: &str) -> bool {
        jsonwebtoken::decode::<Ticket>(ticket, &self.decoding, &self.validation)
            .is_ok_and(|data| data.claims.sub == user && data.claims.typ == TICKET_TYPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_for_one_user_and_one_key() {
        let tickets = ResumeTickets::new(&[7; 32], Duration::from_secs(60));
        let ticket = tickets.issue("alice");
        assert!(tickets.is_valid_for(&ticket, "alice"));
        assert!(!tickets.is_valid_for(&ticket, "bob"));
        assert!(!tickets.is_valid_for("forged", "alice"));
        let other_server = ResumeTickets::new(&[8; 32], Duration::from_secs(60));
        assert!(!other_server.is_valid_for(&ticket, "alice"));
        let expired = Ticket {
            sub: "alice".into(),
            exp: unix_now() - 5,
            typ: TICKET_TYPE.into(),
        };
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &tickets.encoding)
                .unwrap();
        assert!(!tickets.is_valid_for(&expired, "alice"));
    }
}
