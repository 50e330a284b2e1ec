//! The gate's waiter queue: a FIFO of `(id, waker)` entries with O(1) push at the back, pop at
//! the front and removal from anywhere.
//!
//! Entries live in a store indexed by key and are chained front to back by `prev` / `next`
//! keys: an intrusive doubly-linked list without pointers, so no `unsafe`. A waiter keeps a
//! [`Ticket`] (its key and its id); the id tells a live entry from a later one that reused the
//! key. Ids strictly increase from front to back, so the front's id (or the next id to hand
//! out, when the queue is empty) splits granted waiters (below it) from waiting ones.
//!
//! The store is the one part that changes with the build: a [`slab`] with `alloc` (memory
//! bounded by the most waiters alive at once since the queue was last empty: a storm's memory
//! is given back by the first registration after it drained), and
//! without `alloc` a store of capacity zero, so registration is refused as a full queue. A
//! fixed-capacity array store would slot in here for heap-less waiting.

use core::task::Waker;

/// No entry (the end of the chain).
const NIL: u32 = u32::MAX;

/// Where a queued waiter is: its key in the store and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// The entry's key in the store.
    pub(crate) key: u32,
    /// The waiter's id: its position in arrival order.
    pub(crate) id: u64,
}

struct Node {
    id: u64,
    waker: Waker,
    prev: u32,
    next: u32,
}

/// A FIFO of waiting entries with O(1) removal.
pub(crate) struct WaitQueue {
    store: Store,
    head: u32,
    tail: u32,
    next_id: u64,
}

impl WaitQueue {
    pub(crate) const fn new() -> Self {
        Self {
            store: Store::new(),
            head: NIL,
            tail: NIL,
            next_id: 0,
        }
    }

    /// Entries waiting.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether one more entry fits.
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.store.has_room()
    }

    /// The id of the front entry, or the next id to hand out if none waits: tickets with an
    /// id below it have left the queue from the front (granted).
    #[inline]
    pub(crate) fn front_id(&self) -> u64 {
        self.store.get(self.head).map_or(self.next_id, |n| n.id)
    }

    /// Appends an entry; `None` if the store is full (see [`has_room`](Self::has_room)).
    pub(crate) fn push_back(&mut self, waker: Waker) -> Option<Ticket> {
        let id = self.next_id;
        if self.head == NIL {
            // Give back what a storm left behind here, not when the queue drained: then only
            // registration (which may allocate anyway) ever touches the allocator, never a
            // release or a cancellation.
            self.store.drained();
        }
        let key = self.store.insert(Node {
            id,
            waker,
            prev: self.tail,
            next: NIL,
        })?;
        self.next_id += 1;
        let ticket = Ticket { key, id };
        match self.store.get_mut(self.tail) {
            Some(tail) => tail.next = key,
            None => self.head = key,
        }
        self.tail = key;
        Some(ticket)
    }

    /// Takes the front entry off the queue; returns its waker.
    pub(crate) fn pop_front(&mut self) -> Option<Waker> {
        if self.head == NIL {
            return None;
        }
        Some(self.unlink(self.head))
    }

    /// Takes up to `n` entries off the front; returns their wakers.
    pub(crate) fn pop_front_n(&mut self, n: usize) -> WakeList {
        let mut wakers = WakeList::new();
        for _ in 0..n {
            match self.pop_front() {
                Some(waker) => wakers.push(waker),
                None => break,
            }
        }
        wakers
    }

    /// Takes `ticket`'s entry out of the queue; returns its waker, or `None` if the entry is
    /// no longer queued.
    pub(crate) fn remove(&mut self, ticket: Ticket) -> Option<Waker> {
        let key = ticket.key;
        self.store.get(key).filter(|n| n.id == ticket.id)?;
        Some(self.unlink(key))
    }

    /// The store's capacity in entries (tests of its memory bound).
    #[cfg(all(test, feature = "alloc"))]
    pub(crate) fn capacity(&self) -> usize {
        self.store.0.capacity()
    }

    /// The stored waker of `ticket`'s entry, if still queued.
    pub(crate) fn waker_mut(&mut self, ticket: Ticket) -> Option<&mut Waker> {
        self.store
            .get_mut(ticket.key)
            .filter(|n| n.id == ticket.id)
            .map(|n| &mut n.waker)
    }

    /// Unlinks and frees the live entry at `key`.
    fn unlink(&mut self, key: u32) -> Waker {
        let node = self.store.remove(key);
        match self.store.get_mut(node.prev) {
            Some(prev) => prev.next = node.next,
            None => self.head = node.next,
        }
        match self.store.get_mut(node.next) {
            Some(next) => next.prev = node.prev,
            None => self.tail = node.prev,
        }
        node.waker
    }
}

/// Wakers taken off the queue with the lock held, to wake once it is released.
pub(crate) struct WakeList {
    #[cfg(feature = "alloc")]
    wakers: alloc::vec::Vec<Waker>,
}

impl WakeList {
    /// An empty list.
    pub(crate) const fn new() -> Self {
        Self {
            #[cfg(feature = "alloc")]
            wakers: alloc::vec::Vec::new(),
        }
    }

    fn push(&mut self, waker: Waker) {
        #[cfg(feature = "alloc")]
        self.wakers.push(waker);
        // Without a store nothing is ever queued, so nothing is ever pushed here.
        #[cfg(not(feature = "alloc"))]
        let _ = waker;
    }

    /// Wakes every waker (call with no lock held).
    pub(crate) fn wake_all(self) {
        #[cfg(feature = "alloc")]
        for waker in self.wakers {
            waker.wake();
        }
    }
}

/// The entry store: a slab, growing with the waiters alive.
#[cfg(feature = "alloc")]
struct Store(slab::Slab<Node>);

#[cfg(feature = "alloc")]
impl Store {
    /// A drained queue whose store grew past this many entries gives its memory back.
    const SHRINK_ABOVE: usize = 1024;

    const fn new() -> Self {
        Self(slab::Slab::new())
    }

    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }

    /// Keys fit a `u32` (a ticket is small); a slab key is at most its length.
    #[inline]
    fn has_room(&self) -> bool {
        self.0.len() < u32::MAX as usize
    }

    #[inline]
    fn get(&self, key: u32) -> Option<&Node> {
        self.0.get(key as usize)
    }

    #[inline]
    fn get_mut(&mut self, key: u32) -> Option<&mut Node> {
        self.0.get_mut(key as usize)
    }

    /// Stores `node`; its key is below `u32::MAX` (see `has_room`), so never [`NIL`].
    #[inline]
    fn insert(&mut self, node: Node) -> Option<u32> {
        u32::try_from(self.0.insert(node)).ok()
    }

    /// Frees a live entry.
    #[inline]
    fn remove(&mut self, key: u32) -> Node {
        self.0.remove(key as usize)
    }

    /// The queue is empty: give back the memory of a storm (its entries are all vacant).
    #[inline]
    fn drained(&mut self) {
        if self.0.capacity() > Self::SHRINK_ABOVE {
            self.0 = slab::Slab::new();
        }
    }
}

/// The entry store without `alloc`: capacity zero.
#[cfg(not(feature = "alloc"))]
struct Store;

#[cfg(not(feature = "alloc"))]
impl Store {
    const fn new() -> Self {
        Self
    }

    fn len(&self) -> usize {
        0
    }

    fn has_room(&self) -> bool {
        false
    }

    fn get(&self, _key: u32) -> Option<&Node> {
        None
    }

    fn get_mut(&mut self, _key: u32) -> Option<&mut Node> {
        None
    }

    fn insert(&mut self, _node: Node) -> Option<u32> {
        None
    }

    fn remove(&mut self, _key: u32) -> Node {
        unreachable!("nothing is stored without `alloc`")
    }

    fn drained(&mut self) {}
}
