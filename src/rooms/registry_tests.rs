use super::*;
use crate::rooms::RingLimits;

fn registry(max_rooms: usize, per_ip: usize) -> RoomRegistry {
    RoomRegistry::new(
        RegistrySettings {
            shards: 8,
            max_rooms,
            max_rooms_created_per_ip: per_ip,
            room: RoomSettings {
                channel_capacity: 16,
                ring: RingLimits {
                    messages: 16,
                    bytes: 1 << 20,
                },
                max_frame_bytes: 64 * 1024,
            },
        },
        Metrics::new(),
    )
}

fn request() -> HistoryRequest {
    HistoryRequest {
        since: None,
        max_history: 0,
        resume_max: 0,
    }
}

fn ip(last: u8) -> Option<IpAddr> {
    Some(IpAddr::from([127, 0, 0, last]))
}

#[test]
fn rooms_are_created_on_join_and_removed_when_empty() {
    let registry = registry(100, 0);
    let alice: Arc<str> = "alice".into();
    for i in 0..10_000 {
        let name = format!("room-{}", i % 37);
        let ticket = registry.join(&name, ip(1)).unwrap();
        if i % 2 == 0 {
            let (membership, _) = ticket.subscribe(&alice, request());
            drop(membership);
        } else {
            drop(ticket); // abandoned
        }
    }
    assert_eq!(registry.room_count(), 0);
    assert!(registry.rooms().is_empty());
}

#[test]
fn presence_is_per_user_and_max_rooms_is_exact() {
    let registry = registry(2, 0);
    let alice: Arc<str> = "alice".into();
    let ticket = registry.join("a", None).unwrap();
    let a = ticket.room().clone();
    assert!(a.users().is_empty(), "not a member until subscribed");
    let (first_tab, mut first) = ticket.subscribe(&alice, request());
    let (second_tab, _) = registry
        .join("a", None)
        .unwrap()
        .subscribe(&alice, request());
    assert_eq!(a.users(), vec!["alice".to_string()]);
    let watcher: Arc<str> = "watcher".into();
    let (watcher_membership, mut watching) = registry
        .join("a", None)
        .unwrap()
        .subscribe(&watcher, request());
    assert!(
        first.receiver.try_recv().is_ok(),
        "the watcher's join was announced"
    );
    let b = registry.join("b", None).unwrap();
    assert_eq!(
        registry.join("c", None).err(),
        Some(JoinError::TooManyRooms(2))
    );
    drop(first_tab);
    assert!(
        watching.receiver.try_recv().is_err(),
        "second tab still in room a: no leave"
    );
    drop(second_tab);
    assert!(
        watching.receiver.try_recv().is_ok(),
        "last tab gone: leave announced"
    );
    drop(watcher_membership);
    assert_eq!(registry.room_count(), 1, "b is reserved, a is gone");
    assert!(registry.join("c", None).is_ok());
    drop(b);
}

/// One address cannot hold every room slot: its creations are capped, joining rooms others
/// created is not, and a removed room gives its slot back.
#[test]
fn rooms_created_per_address_are_capped() {
    let registry = registry(100, 3);
    let tickets: Vec<JoinTicket> = (0..3)
        .map(|i| registry.join(&format!("r{i}"), ip(1)).unwrap())
        .collect();
    assert_eq!(
        registry.join("r3", ip(1)).err(),
        Some(JoinError::TooManyCreated(3))
    );
    let other = registry.join("other", ip(2)).unwrap();
    let joined_existing = registry.join("other", ip(1));
    assert!(joined_existing.is_ok(), "joining is not creating");
    drop(joined_existing);
    drop(tickets);
    assert!(registry.join("r3", ip(1)).is_ok(), "slots come back");
    drop(other);
}

/// A room removed while the writer still has its messages keeps its watermark; the room
/// created next under that name continues from it.
#[test]
fn a_recreated_room_inherits_an_unsettled_watermark() {
    let registry = registry(100, 0);
    let ticket = registry.join("r", None).unwrap();
    let watermark = ticket.room().watermark().clone();
    watermark.assign(5);
    drop(ticket);
    assert!(registry.get("r").is_none());
    let RoomLookup::Retired(retired) = registry.lookup("r") else {
        panic!("the unsettled watermark is kept");
    };
    assert!(Arc::ptr_eq(&retired, &watermark));
    let again = registry.join("r", None).unwrap();
    assert!(Arc::ptr_eq(again.room().watermark(), &watermark));
    assert!(matches!(registry.lookup("r"), RoomLookup::Live(_)));
    drop(again);
    watermark.advance(5);
    assert!(
        matches!(registry.lookup("r"), RoomLookup::Unknown),
        "settled: nothing to wait for"
    );
}
