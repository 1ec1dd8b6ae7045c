//! Resume tickets: proof that a client was connected, so it may come back first.
//!
//! A client that asks for one (`resume` in its upgrade URL) gets a `welcome` frame carrying a
//! ticket: a token signed with a key only the server has, naming the user, the client address it
//! was given to, when it starts to count and when it expires. Presenting it on a later connection
//! from the same address (`?resume=<ticket>`) puts the client ahead of new arrivals when the
//! server is full or over its accept budget. A ticket counts only once its connection has lasted
//! RESUME_TICKET_MIN_AGE_SECONDS (so asking is not enough) and holds one connection at a time
//! (its `jti`; see the limits). The key lives in the store, so tickets survive the restart whose
//! reconnect storm they are for, and are shared by every node on one store.

use std::net::IpAddr;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::token::unix_now;

/// What a ticket says.
#[derive(Serialize, Deserialize)]
struct Ticket {
    sub: String,
    exp: u64,
    nbf: u64,
    /// The quota address it was given to.
    addr: String,
    /// Which ticket: one connection at a time may resume with it.
    jti: u64,
    /// Marks the token as a resume ticket, so no other token signed with the key can pass.
    typ: String,
}

const TICKET_TYPE: &str = "chatterbox-resume";

/// A ticket that checked out for an address: who it is for, and which ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidTicket {
    pub user: String,
    pub id: u64,
}

/// Issues and checks resume tickets.
pub struct ResumeTickets {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    min_age: Duration,
}

impl ResumeTickets {
    /// Tickets signed with `key` (the server's secret), counting after `min_age`, valid for
    /// `ttl`.
    pub fn new(key: &[u8], min_age: Duration, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "nbf", "sub"]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = 0; // the servers sign and check with their own clocks
        ResumeTickets {
            encoding: EncodingKey::from_secret(key).expect("the resume key is not empty"),
            decoding: DecodingKey::from_secret(key).expect("the resume key is not empty"),
            validation,
            ttl,
            min_age,
        }
    }

    /// A ticket for `user`, connected from `address`.
    pub fn issue(&self, user: &str, address: IpAddr) -> String {
        let now = unix_now();
        let ticket = Ticket {
            sub: user.to_string(),
            exp: now + self.ttl.as_secs(),
            nbf: now + self.min_age.as_secs(),
            addr: address.to_string(),
            jti: fastrand::u64(..),
            typ: TICKET_TYPE.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &ticket, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The ticket, if it is genuine, counts already, has not expired, and was given to
    /// `address`. (Cheap: one HMAC, so it can be checked before anything expensive.)
    pub fn check(&self, ticket: &str, address: IpAddr) -> Option<ValidTicket> {
        let data = jsonwebtoken::decode::<Ticket>(ticket, &self.decoding, &self.validation).ok()?;
        let claims = data.claims;
        (claims.typ == TICKET_TYPE && claims.addr == address.to_string()).then_some(ValidTicket {
            user: claims.sub,
            id: claims.jti,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn tickets_are_for_one_user_address_and_key() {
        let tickets = ResumeTickets::new(&[7; 32], Duration::ZERO, Duration::from_secs(60));
        let ticket = tickets.issue("alice", ip(1));
        let valid = tickets.check(&ticket, ip(1)).unwrap();
        assert_eq!(valid.user, "alice");
        assert_ne!(
            tickets
                .check(&tickets.issue("alice", ip(1)), ip(1))
                .unwrap()
                .id,
            valid.id,
            "each ticket is its own"
        );
        assert!(tickets.check(&ticket, ip(2)).is_none(), "another address");
        assert!(tickets.check("forged", ip(1)).is_none());
        let other_server = ResumeTickets::new(&[8; 32], Duration::ZERO, Duration::from_secs(60));
        assert!(other_server.check(&ticket, ip(1)).is_none());
    }

    #[test]
    fn a_ticket_counts_only_after_its_minimum_age_and_until_it_expires() {
        let young = ResumeTickets::new(&[7; 32], Duration::from_secs(60), Duration::from_secs(600));
        assert!(
            young.check(&young.issue("alice", ip(1)), ip(1)).is_none(),
            "too young"
        );
        let now = unix_now();
        let expired = Ticket {
            sub: "alice".into(),
            exp: now - 5,
            nbf: now - 10,
            addr: ip(1).to_string(),
            jti: 1,
            typ: TICKET_TYPE.into(),
        };
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &young.encoding)
                .unwrap();
        assert!(young.check(&expired, ip(1)).is_none());
    }
}
