//! An embassy-time driver on SysTick for the lm3s6965evb under QEMU: a 1 kHz tick counter and
//! the timer queue, both behind critical sections; the SysTick handler does all the work.
//!
//! The handler also stands in for a device interrupt of a real application: on every tick it
//! takes the gate permit parked in [`crate::PARKED`], if any, and drops it (from interrupt
//! context), which hands the permit to the next waiter of the gate and wakes its task.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// The core clock of the lm3s6965evb in QEMU after reset: 200 MHz / 16.
const CORE_HZ: u32 = 12_500_000;

struct SysTickDriver {
    ticks: Mutex<Cell<u64>>,
    alarm: Mutex<Cell<u64>>,
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    alarm: Mutex::new(Cell::new(u64::MAX)),
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow(cs).borrow_mut();
            if queue.schedule_wake(at, waker) {
                let now = self.ticks.borrow(cs).get();
                self.alarm.borrow(cs).set(queue.next_expiration(now));
            }
        });
    }
}

/// Starts SysTick at the driver's tick rate, with its interrupt.
pub fn init(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / embassy_time_driver::TICK_HZ as u32 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let t = DRIVER.ticks.borrow(cs).get() + 1;
        DRIVER.ticks.borrow(cs).set(t);
        if t >= DRIVER.alarm.borrow(cs).get() {
            // Wakes every due waker and returns the next expiration (u64::MAX if none).
            let next = DRIVER.queue.borrow(cs).borrow_mut().next_expiration(t);
            DRIVER.alarm.borrow(cs).set(next);
        }
    });
    crate::on_tick();
}
