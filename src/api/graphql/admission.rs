//! Who may open one more live connection, and start one more subscription on it: the
//! `[limits]` that keep one client from taking what the others need.
//!
//! Connections are counted per client address (checked before the WebSocket upgrade, so a
//! refused client gets an HTTP 429 and costs no socket task) and per subject (the token's
//! `sub`, known only after `connection_init`: refused with close code 4429). Each admitted
//! connection holds a [`Ticket`] that gives its place back when dropped, however the
//! connection ends. Subscribes are paced per connection by a token bucket ([`SubscribeRate`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::LimitsConfig;

/// Counts of live connections, and the limits they are held to.
#[derive(Debug, Default)]
pub struct Admission {
    pub limits: LimitsConfig,
    subjects: Counts<String>,
    addresses: Counts<IpAddr>,
    pub stats: Arc<AdmissionStats>,
}

/// What `/metrics` shows of admission.
#[derive(Debug, Default)]
pub struct AdmissionStats {
    /// Live connections open now.
    pub connections: AtomicU64,
    pub refused_address: AtomicU64,
    pub refused_subject: AtomicU64,
    pub refused_subscriptions: AtomicU64,
    pub refused_rate: AtomicU64,
    /// Connections closed because their client stopped reading (`max_pending_bytes`).
    pub closed_frozen: AtomicU64,
    /// Connections closed because a write waited past `write_timeout_seconds`.
    pub closed_stalled: AtomicU64,
}

#[derive(Debug)]
struct Counts<K>(Mutex<HashMap<K, usize>>);

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Counts(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq + Clone> Counts<K> {
    /// Takes a place for `key` unless it holds `max` already (0: no limit).
    fn take(&self, key: &K, max: usize) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.clone()).or_insert(0);
        if max != 0 && *n >= max {
            if *n == 0 {
                counts.remove(key);
            }
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, key: &K) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(key);
            }
        }
    }
}

/// A place held by one connection; given back on drop.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    held: Held,
}

#[derive(Debug)]
enum Held {
    Address(IpAddr),
    Subject(String),
}

impl Drop for Ticket {
    fn drop(&mut self) {
        match &self.held {
            Held::Address(ip) => {
                self.admission.addresses.give_back(ip);
                self.admission.stats.connections.fetch_sub(1, Relaxed);
            }
            Held::Subject(sub) => self.admission.subjects.give_back(sub),
        }
    }
}

impl Admission {
    pub fn new(limits: LimitsConfig) -> Admission {
        Admission { limits, ..Admission::default() }
    }

    /// A place for one more connection from `ip`, or the refusal's message.
    pub fn address(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, String> {
        let max = self.limits.connections_per_address;
        if !self.addresses.take(&ip, max) {
            self.stats.refused_address.fetch_add(1, Relaxed);
            return Err(format!(
                "this address holds {max} live connections, the most allowed (limits.connections_per_address)"
            ));
        }
        self.stats.connections.fetch_add(1, Relaxed);
        Ok(Ticket { admission: self.clone(), held: Held::Address(ip) })
    }

    /// A place for one more connection of the subject `sub`, or the refusal's message.
    pub fn subject(self: &Arc<Self>, sub: &str) -> Result<Ticket, String> {
        let max = self.limits.connections_per_subject;
        if !self.subjects.take(&sub.to_string(), max) {
            self.stats.refused_subject.fetch_add(1, Relaxed);
            return Err(format!(
                "your token's subject holds {max} live connections, the most allowed (limits.connections_per_subject)"
            ));
        }
        Ok(Ticket { admission: self.clone(), held: Held::Subject(sub.to_string()) })
    }
}

/// A token bucket: `burst` subscribes at once, refilled at `per_second`.
#[derive(Debug)]
pub struct SubscribeRate {
    tokens: f64,
    burst: f64,
    per_second: f64,
    at: Instant,
}

impl SubscribeRate {
    pub fn new(limits: &LimitsConfig, now: Instant) -> SubscribeRate {
        let burst = f64::from(limits.subscribe_burst);
        SubscribeRate { tokens: burst, burst, per_second: limits.subscribes_per_second, at: now }
    }

    /// Takes one subscribe if the bucket holds one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn places_are_limited_and_given_back_when_a_ticket_drops() {
        let limits = LimitsConfig { connections_per_subject: 2, connections_per_address: 3, ..LimitsConfig::default() };
        let admission = Arc::new(Admission::new(limits));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<Ticket> = (0..3).map(|_| admission.address(ip).unwrap()).collect();
        assert!(admission.address(ip).unwrap_err().contains("connections_per_address"));
        assert!(admission.address("10.0.0.2".parse().unwrap()).is_ok(), "another address has its own count");
        assert_eq!(admission.stats.connections.load(Relaxed), 3);
        drop(held);
        assert_eq!(admission.stats.connections.load(Relaxed), 0);
        assert!(admission.address(ip).is_ok());

        let a = admission.subject("alice").unwrap();
        let _b = admission.subject("alice").unwrap();
        assert!(admission.subject("alice").unwrap_err().contains("connections_per_subject"));
        assert!(admission.subject("bob").is_ok());
        drop(a);
        assert!(admission.subject("alice").is_ok());
        assert_eq!(admission.stats.refused_subject.load(Relaxed), 1);
        assert_eq!(admission.stats.refused_address.load(Relaxed), 1);
        assert!(admission.subjects.0.lock().unwrap().get("bob").is_none(), "no entry is left for a subject gone");

        let unlimited =
            Arc::new(Admission::new(LimitsConfig { connections_per_subject: 0, ..LimitsConfig::default() }));
        let many: Vec<Ticket> = (0..10_000).map(|_| unlimited.subject("load").unwrap()).collect();
        assert_eq!(many.len(), 10_000);
    }

    #[test]
    fn subscribes_come_in_a_burst_then_at_the_rate() {
        let limits = LimitsConfig { subscribes_per_second: 10.0, subscribe_burst: 5, ..LimitsConfig::default() };
        let start = Instant::now();
        let mut rate = SubscribeRate::new(&limits, start);
        assert_eq!((0..8).filter(|_| rate.try_take(start)).count(), 5);
        // 10 per second: one more after 100 ms, not two.
        let later = start + Duration::from_millis(100);
        assert!(rate.try_take(later));
        assert!(!rate.try_take(later));
        // A long pause refills the burst, no more.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| rate.try_take(much_later)).count(), 5);
    }
}
