//! loom models of the gate: every interleaving of a release or a limit change with a waiter
//! registering, being dropped or timing out. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_gate`, and once more with
//! `RUSTFLAGS="--cfg loom --cfg dike_loom_32"` (in its own target directory) to check the
//! grant check of targets without 64-bit atomics, which always takes the lock.
#![cfg(loom)]

use core::task::Poll;
use core::time::Duration;
use std::sync::Arc;

use dike::gate::Gate;
use dike::time::ManualTimer;
use loom::thread;

#[path = "support/loom.rs"]
mod support;
use support::{block_on, poll_once};

fn assert_all_free(gate: &Gate) {
    let stats = gate.stats();
    assert_eq!((stats.in_use, stats.waiting), (0, 0), "{stats:?}");
    let permits: Vec<_> = (0..gate.limit()).map(|_| gate.try_enter()).collect();
    assert!(permits.iter().all(Result::is_ok), "a permit was lost");
    assert!(gate.try_enter().is_err(), "a permit was created");
}

/// A release racing with the drop of the waiter it may hand its permit to: the permit ends
/// up back in the gate either way.
#[test]
fn release_races_with_a_waiter_being_dropped() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        let permit = gate.try_enter_owned().unwrap();
        let mut waiter = gate.enter_owned();
        assert!(poll_once(&mut waiter).is_pending());
        let releaser = thread::spawn(move || drop(permit));
        drop(waiter);
        releaser.join().unwrap();
        assert_all_free(&gate);
    });
}

/// Two waiters; the release races with the first waiter being dropped. The second one must
/// be woken and complete (`block_on` deadlocks, and loom reports it, if no wake comes).
#[test]
fn the_next_waiter_gets_a_permit_passed_on_by_a_dropped_one() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        let permit = gate.try_enter_owned().unwrap();
        let mut first = gate.enter_owned();
        let mut second = gate.enter_owned();
        assert!(poll_once(&mut first).is_pending());
        assert!(poll_once(&mut second).is_pending());
        let releaser = thread::spawn(move || drop(permit));
        let dropper = thread::spawn(move || drop(first));
        let permit = block_on(second).expect("no bound on waiters");
        drop(permit);
        releaser.join().unwrap();
        dropper.join().unwrap();
        assert_all_free(&gate);
    });
}

/// A waiter registering (fast path fails, then the lock) while the only permit is released:
/// the release is never missed.
#[test]
fn no_lost_wakeup_between_the_fast_path_and_the_queue() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        let permit = gate.try_enter_owned().unwrap();
        let releaser = thread::spawn(move || drop(permit));
        let permit = block_on(gate.enter_owned()).expect("no bound on waiters");
        drop(permit);
        releaser.join().unwrap();
        assert_all_free(&gate);
    });
}

/// A deadline passing while the permit is being handed over: the waiter either gets the
/// permit or times out, and in the second case the permit is back in the gate.
#[test]
fn a_timeout_racing_with_a_grant_never_loses_the_permit() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        let timer = ManualTimer::new();
        let permit = gate.try_enter_owned().unwrap();
        let mut waiter = Box::pin(gate.enter_timeout_owned(&timer, Duration::from_millis(1)));
        assert!(poll_once(&mut waiter).is_pending());
        let releaser = thread::spawn(move || drop(permit));
        timer.advance(Duration::from_millis(1));
        let Poll::Ready(result) = poll_once(&mut waiter) else {
            panic!("the deadline has passed");
        };
        drop(result);
        drop(waiter);
        releaser.join().unwrap();
        assert_all_free(&gate);
    });
}

/// `set_limit` lowering the limit to 0 while the only permit is dropped: whichever comes
/// first, no permit is free afterwards (the release pays the debt instead).
#[test]
fn lowering_the_limit_races_with_a_release() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        let permit = gate.try_enter_owned().unwrap();
        let lowerer = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || gate.set_limit(0))
        };
        drop(permit);
        lowerer.join().unwrap();
        assert!(gate.try_enter().is_err(), "admitted beyond a limit of 0");
        assert_eq!(gate.stats().in_use, 0);
        gate.set_limit(1);
        assert_all_free(&gate);
    });
}

/// `set_limit` lowering the limit while permits come back and a waiter registers: the waiter
/// is served once the permits in use fall below the new limit, and never beyond it.
#[test]
fn lowering_the_limit_races_with_a_registration_and_releases() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(2));
        let first = gate.try_enter_owned().unwrap();
        let second = gate.try_enter_owned().unwrap();
        let lowerer = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || {
                gate.set_limit(1);
                drop(first);
            })
        };
        drop(second);
        let permit = block_on(gate.enter_owned()).expect("no bound on waiters");
        assert!(gate.try_enter().is_err(), "two in use under a limit of 1");
        drop(permit);
        lowerer.join().unwrap();
        assert_all_free(&gate);
    });
}

/// `set_limit` raising the limit while a waiter registers: the new permit reaches it (a
/// waiter that registered after the raise took it itself; one before was granted and woken).
#[test]
fn raising_the_limit_races_with_a_registration() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        let held = gate.try_enter_owned().unwrap();
        let raiser = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || gate.set_limit(2))
        };
        let permit = block_on(gate.enter_owned()).expect("no bound on waiters");
        raiser.join().unwrap();
        assert!(gate.try_enter().is_err(), "three in use under a limit of 2");
        drop((permit, held));
        assert_all_free(&gate);
    });
}

/// `set_limit` lowering to 0 and a release, both racing with a timed waiter reaching its
/// deadline: the waiter either got the released permit or timed out, and afterwards the gate
/// holds exactly what it should.
#[test]
fn lowering_the_limit_races_with_a_timed_out_waiter() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        let timer = ManualTimer::new();
        let permit = gate.try_enter_owned().unwrap();
        let mut waiter = Box::pin(gate.enter_timeout_owned(&timer, Duration::from_millis(1)));
        assert!(poll_once(&mut waiter).is_pending());
        let lowerer = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || gate.set_limit(0))
        };
        let releaser = thread::spawn(move || drop(permit));
        timer.advance(Duration::from_millis(1));
        let Poll::Ready(result) = poll_once(&mut waiter) else {
            panic!("the deadline has passed");
        };
        drop(waiter);
        lowerer.join().unwrap();
        releaser.join().unwrap();
        let stats = gate.stats();
        assert_eq!(stats.waiting, 0, "{stats:?}");
        assert_eq!(stats.in_use, usize::from(result.is_ok()), "{stats:?}");
        assert!(gate.try_enter().is_err(), "admitted beyond a limit of 0");
        drop(result);
        gate.set_limit(1);
        assert_all_free(&gate);
    });
}

/// `set_limit` raising the limit while a timed waiter reaches its deadline: a permit granted
/// by the raise is either taken by the waiter or given back, never lost.
#[test]
fn raising_the_limit_races_with_a_timed_out_waiter() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        let timer = ManualTimer::new();
        let held = gate.try_enter_owned().unwrap();
        let mut waiter = Box::pin(gate.enter_timeout_owned(&timer, Duration::from_millis(1)));
        assert!(poll_once(&mut waiter).is_pending());
        let raiser = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || gate.set_limit(2))
        };
        timer.advance(Duration::from_millis(1));
        let Poll::Ready(result) = poll_once(&mut waiter) else {
            panic!("the deadline has passed");
        };
        drop(waiter);
        raiser.join().unwrap();
        assert_eq!(gate.stats().in_use, 1 + usize::from(result.is_ok()));
        drop((result, held));
        assert_all_free(&gate);
    });
}

/// A waiter in the middle of the queue dropped while a permit is released: the front waiter
/// gets it (strict FIFO), the back one keeps waiting, and nothing is lost.
#[test]
fn a_waiter_leaving_the_middle_races_with_a_release() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(1));
        let permit = gate.try_enter_owned().unwrap();
        let mut first = gate.enter_owned();
        let mut middle = gate.enter_owned();
        let mut last = gate.enter_owned();
        assert!(poll_once(&mut first).is_pending());
        assert!(poll_once(&mut middle).is_pending());
        assert!(poll_once(&mut last).is_pending());
        let dropper = thread::spawn(move || drop(middle));
        drop(permit);
        let permit = block_on(first).expect("no bound on waiters");
        dropper.join().unwrap();
        assert!(
            poll_once(&mut last).is_pending(),
            "the first waiter holds the permit"
        );
        assert_eq!(gate.stats().waiting, 1);
        drop(permit);
        let Poll::Ready(Ok(permit)) = poll_once(&mut last) else {
            panic!("handed over on release");
        };
        drop(permit);
        assert_all_free(&gate);
    });
}
