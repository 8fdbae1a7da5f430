//! The control socket's connection slots.
//!
//! The number of connections served at once is bounded, but a full table
//! must never keep an officer out: idle clients cost nothing to drop and
//! reconnect, so a new connection takes the slot of the one that has been
//! idle longest. Only connections whose request is being answered are
//! safe from that, and only if every slot is answering is a newcomer
//! turned away.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

#[derive(Debug)]
pub struct Slots {
    capacity: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    open: BTreeMap<u64, Slot>,
}

#[derive(Debug)]
struct Slot {
    /// Since when the connection has had no request being answered;
    /// `None` while one is.
    idle_since: Option<Instant>,
    evicted: Arc<Notify>,
}

/// Every slot is answering a request.
#[derive(Debug, PartialEq, Eq)]
pub struct AllBusy;

impl Slots {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self { capacity, table: Mutex::new(Table::default()) })
    }

    /// Takes a slot for a new connection, evicting the longest-idle
    /// connection when the table is full. Never waits.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<SlotGuard, AllBusy> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.open.len() >= self.capacity {
            let longest_idle = table
                .open
                .iter()
                .filter_map(|(id, slot)| slot.idle_since.map(|since| (since, *id)))
                .min()
                .map(|(_, id)| id);
            let Some(id) = longest_idle else { return Err(AllBusy) };
            if let Some(slot) = table.open.remove(&id) {
                // notify_one keeps a permit, so a connection between two
                // awaits still sees it.
                slot.evicted.notify_one();
                tracing::info!(connection = id, "control socket full; the longest-idle connection is dropped");
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let evicted = Arc::new(Notify::new());
        table.open.insert(id, Slot { idle_since: Some(now), evicted: evicted.clone() });
        Ok(SlotGuard { id, slots: self.clone(), evicted })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).open.len()
    }

    fn set_idle_since(&self, id: u64, idle_since: Option<Instant>) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = table.open.get_mut(&id) {
            slot.idle_since = idle_since;
        }
    }
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
pub struct SlotGuard {
    id: u64,
    slots: Arc<Slots>,
    evicted: Arc<Notify>,
}

impl SlotGuard {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A whole request has arrived: the connection may not be evicted
    /// until it has been answered.
    pub fn answering(&self) {
        self.slots.set_idle_since(self.id, None);
    }

    /// The reply has been sent; the connection waits for the client again.
    pub fn idle(&self, now: Instant) {
        self.slots.set_idle_since(self.id, Some(now));
    }

    /// Completes once another connection has taken this slot.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut table = self.slots.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.open.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_full_table_drops_the_longest_idle_connection() {
        let slots = Slots::new(3);
        let start = Instant::now();
        let first = slots.admit(start).unwrap();
        let second = slots.admit(start + Duration::from_secs(1)).unwrap();
        let third = slots.admit(start + Duration::from_secs(2)).unwrap();
        first.answering();
        let newcomer = slots.admit(start + Duration::from_secs(3)).unwrap();
        assert_eq!(slots.open(), 3);
        tokio::time::timeout(Duration::from_secs(1), second.evicted()).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(20), third.evicted()).await.is_err());
        assert!(tokio::time::timeout(Duration::from_millis(20), first.evicted()).await.is_err());
        drop(second);
        assert_eq!(slots.open(), 3, "an evicted slot is already free and is not given back twice");
        drop(newcomer);
        assert_eq!(slots.open(), 2);
    }

    #[test]
    fn a_newcomer_is_turned_away_only_when_every_slot_is_answering() {
        let slots = Slots::new(2);
        let now = Instant::now();
        let a = slots.admit(now).unwrap();
        let b = slots.admit(now).unwrap();
        a.answering();
        b.answering();
        assert_eq!(slots.admit(now).unwrap_err(), AllBusy);
        b.idle(now);
        let c = slots.admit(now).unwrap();
        assert_ne!(c.id(), b.id());
        assert_eq!(slots.open(), 2);
    }
}
