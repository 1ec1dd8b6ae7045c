//! Who joins which room and who publishes: the shape of one run.
//!
//! Connection `i` joins room `i / members`; the first `publishers` members of
//! each room publish. Room and user names carry a per-run tag, so every run
//! starts in fresh, empty rooms (no history, ids from 1) even against a
//! long-lived server, and old messages can never be mistaken for new ones.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::cli::{Options, Scenario};

/// The resolved shape of a run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    /// Unique per run; part of every room and user name.
    pub tag: String,
    pub clients: u32,
    pub rooms: u32,
    pub members: u32,
    /// Publishers per room.
    pub publishers: u32,
    /// Publishers across all rooms (the last room may be smaller than `members`).
    pub total_publishers: u32,
}

impl Plan {
    /// Resolves scenario defaults and checks the numbers make sense.
    pub fn new(opts: &Options, tag: String) -> Result<Self> {
        let traffic = matches!(opts.scenario, Scenario::Fanout | Scenario::Rooms);
        if opts.scenario == Scenario::Joins {
            return Self::joins(opts, tag);
        }
        let (clients, members) = match opts.scenario {
            Scenario::Fanout => {
                let m = opts.members.unwrap_or(opts.clients);
                (m, m)
            }
            other => {
                let default_members = match other {
                    Scenario::Rooms | Scenario::Churn => 10,
                    _ => 100,
                };
                let members = match (opts.members, opts.rooms) {
                    (Some(m), _) => m,
                    (None, Some(r)) if r > 0 => opts.clients.div_ceil(r),
                    _ => default_members,
                };
                (opts.clients, members.min(opts.clients))
            }
        };
        if clients == 0 || members == 0 {
            bail!("need at least one client and one member per room");
        }
        let publishers = if traffic {
            opts.publishers.unwrap_or(1)
        } else {
            0
        };
        if publishers > members {
            bail!("--publishers ({publishers}) cannot exceed the members per room ({members})");
        }
        if traffic && !(opts.rate > 0.0 && opts.rate.is_finite()) {
            bail!("--rate must be a positive number of messages per second");
        }
        let mut plan = Self {
            tag,
            clients,
            rooms: clients.div_ceil(members),
            members,
            publishers,
            total_publishers: 0,
        };
        plan.total_publishers = plan.count_publishers();
        Ok(plan)
    }

    /// The joins scenario: a pool of `--clients` joiners over `--rooms` rooms.
    fn joins(opts: &Options, tag: String) -> Result<Self> {
        let rooms = opts.rooms.unwrap_or(1);
        if opts.clients == 0 || rooms == 0 {
            bail!("need at least one client and one room");
        }
        if !(opts.join_rate > 0.0 && opts.join_rate.is_finite()) {
            bail!("--join-rate must be a positive number of joins per second");
        }
        Ok(Self {
            tag,
            clients: opts.clients,
            rooms,
            members: opts.clients.div_ceil(rooms),
            publishers: 0,
            total_publishers: 0,
        })
    }

    /// The room the `k`-th scheduled join goes to (joins scenario).
    pub fn room_of_join(&self, k: u64) -> u32 {
        (k % u64::from(self.rooms)) as u32
    }

    /// The user a room's seeding (and anchoring) connection joins as; distinct
    /// from every [`Plan::user_name`].
    pub fn seeder_name(&self, room: u32) -> String {
        format!("lt{}-s{room}", self.tag)
    }

    /// A short tag that differs between runs (base-36 of the clock).
    pub fn fresh_tag() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut n = (nanos / 1000) % 36u128.pow(7);
        let mut s = Vec::new();
        for _ in 0..7 {
            s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
            n /= 36;
        }
        s.reverse();
        String::from_utf8(s).expect("ascii")
    }

    /// The room connection `conn` joins.
    pub fn room_of(&self, conn: u32) -> u32 {
        conn / self.members
    }

    pub fn room_name(&self, room: u32) -> String {
        format!("lt-{}-{room}", self.tag)
    }

    /// Unique per connection and at most 20 characters (the server allows 32).
    pub fn user_name(&self, conn: u32) -> String {
        format!("lt{}-{conn}", self.tag)
    }

    /// The global publisher index of `conn`, if it publishes.
    pub fn publisher_of(&self, conn: u32) -> Option<u32> {
        let pos = conn % self.members;
        (pos < self.publishers).then(|| self.room_of(conn) * self.publishers + pos)
    }

    fn count_publishers(&self) -> u32 {
        let full_rooms = self.clients / self.members;
        let rest = self.clients % self.members;
        full_rooms * self.publishers + rest.min(self.publishers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Result<Plan> {
        let mut argv = vec!["x"];
        argv.extend_from_slice(args);
        let opts = <Options as clap::Parser>::try_parse_from(argv).unwrap();
        Plan::new(&opts, "t".into())
    }

    #[test]
    fn fanout_is_one_room_of_everyone() {
        let p = plan(&["-c", "1000"]).unwrap();
        assert_eq!(
            (p.clients, p.rooms, p.members, p.publishers),
            (1000, 1, 1000, 1)
        );
        assert_eq!(p.publisher_of(0), Some(0));
        assert_eq!(p.publisher_of(1), None);
        let p = plan(&["--members", "50", "--publishers", "3"]).unwrap();
        assert_eq!((p.clients, p.total_publishers), (50, 3));
    }

    #[test]
    fn rooms_split_clients() {
        let p = plan(&["--scenario", "rooms", "-c", "95", "--rooms", "10"]).unwrap();
        assert_eq!((p.rooms, p.members), (10, 10));
        assert_eq!(p.room_of(94), 9);
        assert_eq!(p.publisher_of(90), Some(9));
        assert_eq!(p.total_publishers, 10);
        let p = plan(&[
            "--scenario",
            "rooms",
            "-c",
            "100",
            "--members",
            "4",
            "--publishers",
            "2",
        ]);
        let p = p.unwrap();
        assert_eq!((p.rooms, p.total_publishers), (25, 50));
        assert_eq!(p.publisher_of(5), Some(3));
    }

    #[test]
    fn quiet_scenarios_never_publish() {
        let p = plan(&["--scenario", "idle", "-c", "5000", "--publishers", "3"]).unwrap();
        assert_eq!((p.rooms, p.members, p.publishers), (50, 100, 0));
        let p = plan(&["--scenario", "churn", "-c", "5"]).unwrap();
        assert_eq!((p.rooms, p.members), (1, 5));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(plan(&["-c", "0"]).is_err());
        assert!(plan(&["-c", "2", "--publishers", "3"]).is_err());
        assert!(plan(&["--rate", "0"]).is_err());
        assert!(plan(&["--scenario", "joins", "--join-rate", "0"]).is_err());
        assert!(plan(&["--scenario", "joins", "--rooms", "0"]).is_err());
    }

    #[test]
    fn joins_pool_spreads_over_rooms() {
        let p = plan(&["--scenario", "joins", "-c", "100", "--rate", "0"]).unwrap();
        assert_eq!((p.clients, p.rooms, p.publishers), (100, 1, 0));
        let p = plan(&["--scenario", "joins", "-c", "10", "--rooms", "3"]).unwrap();
        assert_eq!((p.rooms, p.members), (3, 4));
        assert_eq!(
            (0..6).map(|k| p.room_of_join(k)).collect::<Vec<_>>(),
            vec![0, 1, 2, 0, 1, 2]
        );
        assert_ne!(p.seeder_name(1), p.user_name(1));
        assert!(p.seeder_name(9999).len() <= 32);
    }

    #[test]
    fn names_are_unique_and_short() {
        let tag = Plan::fresh_tag();
        assert_eq!(tag.len(), 7);
        let p = Plan {
            tag,
            clients: 20_000,
            rooms: 1,
            members: 20_000,
            publishers: 1,
            total_publishers: 1,
        };
        assert!(p.user_name(19_999).len() <= 32);
        assert_ne!(p.user_name(1), p.user_name(11));
        assert_eq!(p.room_name(3), format!("lt-{}-3", p.tag));
    }
}
