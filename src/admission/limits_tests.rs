use super::*;

fn config(configure: impl FnOnce(&mut AdmissionConfig)) -> AdmissionConfig {
    let mut config = crate::Config::default().admission;
    config.max_connections = Some(0);
    config.max_connections_per_ip = 0;
    config.max_connects_per_ip_per_second = 0;
    config.max_connects_per_second = 0;
    configure(&mut config);
    config
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[test]
fn per_address_connections_are_counted_until_the_permit_drops() {
    let limits = ConnectionLimits::new(&config(|c| c.max_connections_per_ip = 2));
    let a = limits.admit(ip(1), false).unwrap();
    let _b = limits.admit(ip(1), false).unwrap();
    assert_eq!(
        limits.admit(ip(1), false).err(),
        Some(LimitRefusal::AddressConnections { limit: 2 })
    );
    assert!(limits.admit(ip(2), false).is_ok(), "another address");
    drop(a);
    assert!(limits.admit(ip(1), false).is_ok(), "a place came back");
}

#[test]
fn the_connect_rate_is_per_address_and_resumes_skip_it() {
    let limits = ConnectionLimits::new(&config(|c| c.max_connects_per_ip_per_second = 1));
    let mut permits = Vec::new();
    // A burst of twice the rate, then refusals with a wait to retry after.
    for _ in 0..2 {
        permits.push(limits.admit(ip(1), false).unwrap());
    }
    let Err(LimitRefusal::AddressRate { retry_after }) = limits.admit(ip(1), false) else {
        panic!("the third connect in a burst of two is refused");
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
    permits.push(limits.admit(ip(2), false).unwrap());
    permits.push(limits.admit(ip(1), true).unwrap());
}

/// The last slots are for resuming clients: new arrivals stop at 90%, resumes go on to 100%.
#[test]
fn a_full_server_keeps_its_reserve_for_resuming_clients() {
    let limits = ConnectionLimits::new(&config(|c| {
        c.max_connections = Some(10);
        c.resume_reserve_percent = 20;
    }));
    let mut permits: Vec<_> = (0..8)
        .map(|i| limits.admit(ip(i), false).unwrap())
        .collect();
    assert_eq!(
        limits.admit(ip(100), false).err(),
        Some(LimitRefusal::ServerFull)
    );
    permits.push(limits.admit(ip(101), true).unwrap());
    permits.push(limits.admit(ip(102), true).unwrap());
    assert_eq!(
        limits.admit(ip(103), true).err(),
        Some(LimitRefusal::ServerFull),
        "100%"
    );
    assert_eq!(limits.open(), 10);
}

/// Over the accept budget, resuming clients still get in: new arrivals may only take their
/// share of it.
#[test]
fn the_accept_budget_keeps_a_share_for_resuming_clients() {
    let limits = ConnectionLimits::new(&config(|c| {
        c.max_connects_per_second = 10; // bursts of 20, new arrivals 9/s (bursts of 18)
        c.resume_reserve_percent = 10;
    }));
    let mut admitted_new = 0;
    let mut permits = Vec::new();
    for i in 0..100u8 {
        match limits.admit(ip(i), false) {
            Ok(permit) => {
                admitted_new += 1;
                permits.push(permit);
            }
            Err(refusal) => assert!(matches!(refusal, LimitRefusal::AcceptBudget { .. })),
        }
    }
    assert_eq!(admitted_new, 18, "new arrivals take their burst");
    permits.push(limits.admit(ip(200), true).expect("a resume still gets in"));
    permits.push(limits.admit(ip(201), true).expect("and another"));
}

#[test]
fn the_default_total_follows_the_descriptor_limit() {
    let limits = ConnectionLimits::new(&config(|c| c.max_connections = None));
    let max = limits.max_total().unwrap();
    assert!(max >= 1 && max < descriptor_limit(), "{max}");
}
