use super::*;

fn config(configure: impl FnOnce(&mut AdmissionConfig)) -> AdmissionConfig {
    let mut config = crate::Config::default().admission;
    config.max_connections = Some(0);
    config.max_connections_per_ip = 0;
    config.max_connects_per_ip_per_second = 0;
    config.resume_connects_per_ip_per_second = 0;
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
    let a = limits.admit(ip(1), None).unwrap();
    let _b = limits.admit(ip(1), None).unwrap();
    assert_eq!(
        limits.admit(ip(1), None).err(),
        Some(LimitRefusal::AddressConnections { limit: 2 })
    );
    assert_eq!(
        limits.would_refuse(ip(1)),
        Some(LimitRefusal::AddressConnections { limit: 2 })
    );
    assert!(limits.admit(ip(2), None).is_ok(), "another address");
    drop(a);
    assert!(limits.would_refuse(ip(1)).is_none());
    assert!(limits.admit(ip(1), None).is_ok(), "a place came back");
}

#[test]
fn the_connect_rate_is_per_address_and_resumes_have_a_looser_one() {
    let limits = ConnectionLimits::new(&config(|c| {
        c.max_connects_per_ip_per_second = 1;
        c.resume_connects_per_ip_per_second = 2;
    }));
    // A burst of twice the rate, then refusals with a wait to retry after.
    for _ in 0..2 {
        limits.check_rate(ip(1), false).unwrap();
    }
    let Err(LimitRefusal::AddressRate { retry_after }) = limits.check_rate(ip(1), false) else {
        panic!("the third connect in a burst of two is refused");
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
    limits.check_rate(ip(2), false).unwrap();
    for _ in 0..4 {
        limits.check_rate(ip(1), true).unwrap();
    }
    assert!(
        limits.check_rate(ip(1), true).is_err(),
        "resumes are metered too"
    );
}

/// The last slots are for resuming clients: new arrivals stop at 80%, resumes go on to 100%,
/// and a ticket holds one connection at a time.
#[test]
fn a_full_server_keeps_its_reserve_for_resuming_clients() {
    let limits = ConnectionLimits::new(&config(|c| {
        c.max_connections = Some(10);
        c.resume_reserve_percent = 20;
    }));
    let mut permits: Vec<_> = (0..8).map(|i| limits.admit(ip(i), None).unwrap()).collect();
    assert_eq!(
        limits.admit(ip(100), None).err(),
        Some(LimitRefusal::ServerFull)
    );
    permits.push(limits.admit(ip(101), Some(7)).unwrap());
    assert_eq!(
        limits.admit(ip(101), Some(7)).err(),
        Some(LimitRefusal::ServerFull),
        "a ticket in use counts as none"
    );
    permits.push(limits.admit(ip(102), Some(8)).unwrap());
    assert_eq!(
        limits.admit(ip(103), Some(9)).err(),
        Some(LimitRefusal::ServerFull),
        "100%"
    );
    assert_eq!(limits.open(), 10);
    permits.pop();
    assert!(
        limits.admit(ip(102), Some(8)).is_ok(),
        "its ticket is free again"
    );
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
        match limits.admit(ip(i), None) {
            Ok(permit) => {
                admitted_new += 1;
                permits.push(permit);
            }
            Err(refusal) => assert!(matches!(refusal, LimitRefusal::AcceptBudget { .. })),
        }
    }
    assert_eq!(admitted_new, 18, "new arrivals take their burst");
    permits.push(
        limits
            .admit(ip(200), Some(1))
            .expect("a resume still gets in"),
    );
    permits.push(limits.admit(ip(201), Some(2)).expect("and another"));
}

#[test]
fn the_reserve_rounds_up_and_huge_limits_do_not_overflow() {
    let small = ConnectionLimits::new(&config(|c| {
        c.max_connections = Some(5);
        c.resume_reserve_percent = 10;
    }));
    assert_eq!(small.max_total_new, Some(4), "10% of 5 keeps one place");
    let huge = ConnectionLimits::new(&config(|c| {
        c.max_connections = Some(usize::MAX);
        c.resume_reserve_percent = 10;
    }));
    assert!(huge.max_total_new.unwrap() < usize::MAX);
}

#[test]
fn the_default_total_follows_the_descriptor_limit() {
    let limits = ConnectionLimits::new(&config(|c| c.max_connections = None));
    let max = limits.max_total().unwrap();
    assert!(max >= 1 && max < descriptor_limit(), "{max}");
}
