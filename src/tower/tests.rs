use alloc::string::ToString;
use core::error::Error as _;

use super::*;
use crate::gate::Gate;
use crate::throttle::Throttle;
use crate::time::ManualTimer;

#[derive(Debug)]
struct Boom;

impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("boom")
    }
}

impl core::error::Error for Boom {}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Error<Boom>>();
    send_sync::<GateLayer>();
    send_sync::<GateLayer<ManualTimer>>();
    send_sync::<GateService<(), ()>>();
    send_sync::<GateService<(), ManualTimer>>();
    send_sync::<ThrottleLayer<ManualTimer>>();
    send_sync::<ThrottleService<(), ManualTimer>>();
    send_sync::<ResponseFuture<core::future::Ready<Result<(), ()>>>>();
    send_sync::<RetryLayer<crate::retry::Backoff, crate::retry::NoHooks, ManualTimer>>();
    send_sync::<RetryService<(), crate::retry::Backoff, crate::retry::NoHooks, ManualTimer>>();
    send_sync::<CoalesceLayer<fn(&u8) -> u8, u8, u8, ()>>();
    send_sync::<CoalesceService<(), fn(&u8) -> u8, u8, u8, ()>>();
    send_sync::<CoalesceFuture<u8, u8, ()>>();
    send_sync::<BatchLayer<u8, ManualTimer>>();
}

#[test]
fn display_is_the_refusal_or_a_lead_with_the_inner_error_as_source() {
    let refusal: Error<Boom> = Gate::new(0).try_enter().unwrap_err().into();
    assert_eq!(refusal.to_string(), "too many calls: limit of 0 reached");
    assert!(refusal.source().is_none());

    let timer = ManualTimer::new();
    let throttle = Throttle::per_second(1).unwrap();
    throttle.try_acquire(&timer).unwrap();
    let limited: Error<Boom> = throttle.try_acquire(&timer).unwrap_err().into();
    assert_eq!(limited.to_string(), "rate limited: ready in 1s");
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(1)));

    let inner: Error<Boom> = Error::Inner(Boom);
    assert_eq!(inner.to_string(), "inner service failed");
    let source = inner.source().expect("the inner error");
    assert!(source.downcast_ref::<Boom>().is_some());
    assert!(!inner.is_refusal() && refusal.is_refusal() && limited.is_refusal());
}

#[test]
fn a_boxed_error_downcasts_back_to_the_typed_one() {
    let refusal: Error<Boom> = Gate::new(0).try_enter().unwrap_err().into();
    let boxed: alloc::boxed::Box<dyn core::error::Error + Send + Sync> = refusal.into();
    match boxed.downcast_ref::<Error<Boom>>() {
        Some(Error::TooManyCalls(err)) => assert_eq!(err.limit(), 0),
        other => panic!("{other:?}"),
    }
}

#[cfg(feature = "axum")]
#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    use super::axum::whole_seconds_up;
    assert_eq!(whole_seconds_up(Duration::ZERO), 0);
    assert_eq!(whole_seconds_up(Duration::from_nanos(1)), 1);
    assert_eq!(whole_seconds_up(Duration::from_millis(1000)), 1);
    assert_eq!(whole_seconds_up(Duration::from_millis(1001)), 2);
    assert_eq!(whole_seconds_up(Duration::MAX), u64::MAX);
}
