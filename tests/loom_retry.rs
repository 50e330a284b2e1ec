//! Loom models of the retry budget: concurrent withdrawals never overdraw, deposits never
//! exceed the capacity, and no update is lost.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom_retry`.

#![cfg(loom)]

use dike::retry::RetryBudget;
use loom::sync::Arc;
use loom::thread;

#[test]
fn concurrent_withdrawals_never_overdraw() {
    loom::model(|| {
        // Room for exactly two retries; three threads race for them.
        let budget = Arc::new(RetryBudget::with_capacity(10, 5, 1).unwrap());
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let budget = Arc::clone(&budget);
                thread::spawn(move || u32::from(budget.try_withdraw()))
            })
            .collect();
        let granted: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(granted, 2);
        assert_eq!(budget.available(), 0);
    });
}

#[test]
fn deposits_race_withdrawals_without_losing_tokens() {
    loom::model(|| {
        let budget = Arc::new(RetryBudget::with_capacity(10, 5, 1).unwrap());
        assert!(budget.try_withdraw()); // 5 left
        let depositor = {
            let budget = Arc::clone(&budget);
            thread::spawn(move || {
                budget.deposit();
                budget.deposit();
            })
        };
        let withdrawer = {
            let budget = Arc::clone(&budget);
            thread::spawn(move || budget.try_withdraw())
        };
        depositor.join().unwrap();
        assert!(withdrawer.join().unwrap(), "5 tokens were there all along");
        // 5 - 5 + 2, in any interleaving: the cap (10) is never reached.
        assert_eq!(budget.available(), 2);
    });
}

#[test]
fn deposits_saturate_at_capacity() {
    loom::model(|| {
        let budget = Arc::new(RetryBudget::with_capacity(6, 5, 1).unwrap());
        assert!(budget.try_withdraw()); // 1 left
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let budget = Arc::clone(&budget);
                thread::spawn(move || {
                    for _ in 0..3 {
                        budget.deposit();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(budget.available(), 6);
    });
}
