//! A small bounded cache of recent resolutions with a time to live: a load followed by a play
//! (or the same search from several guilds) costs one yt-dlp round trip. Oldest entries go first
//! when it is full. Pure data structure; callers hold it behind a mutex for short critical
//! sections only.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Cache {
    ttl: Duration,
    capacity: usize,
    /// key → (insertion number, time, value)
    map: HashMap<String, (u64, Instant, Arc<Value>)>,
    /// Insertion order, for eviction; may hold positions of keys since replaced or removed.
    order: VecDeque<(String, u64)>,
    seq: u64,
}

impl Cache {
    pub fn new(ttl: Duration, capacity: usize) -> Cache {
        Cache {
            ttl,
            capacity,
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    pub fn get(&mut self, key: &str, now: Instant) -> Option<Arc<Value>> {
        let (_, at, value) = self.map.get(key)?;
        if now.duration_since(*at) < self.ttl {
            Some(value.clone())
        } else {
            self.map.remove(key);
            None
        }
    }

    pub fn insert(&mut self, key: String, value: Arc<Value>, now: Instant) {
        if !self.enabled() {
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        self.map.insert(key.clone(), (seq, now, value));
        self.order.push_back((key, seq));
        // Drop expired and superseded entries from the front, then the oldest while over capacity.
        while let Some((k, n)) = self.order.front() {
            let entry = self.map.get(k).filter(|(s, _, _)| s == n);
            let expired = entry.is_some_and(|(_, at, _)| now.duration_since(*at) >= self.ttl);
            if entry.is_some() && !expired && self.map.len() <= self.capacity {
                break;
            }
            if entry.is_some() {
                self.map.remove(k);
            }
            self.order.pop_front();
        }
        // Keys replaced again and again leave superseded positions behind the front: compact.
        if self.order.len() > 2 * self.capacity + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, n)| map.get(k).is_some_and(|(s, _, _)| s == n));
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut c = Cache::new(Duration::from_secs(10), 8);
        c.insert("a".into(), Arc::new(json!(1)), t0);
        assert_eq!(
            c.get("a", t0 + Duration::from_secs(9)).as_deref(),
            Some(&json!(1))
        );
        assert!(c.get("a", t0 + Duration::from_secs(10)).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let t0 = Instant::now();
        let mut c = Cache::new(Duration::from_secs(60), 2);
        c.insert("a".into(), Arc::new(json!(1)), t0);
        c.insert("b".into(), Arc::new(json!(2)), t0);
        c.insert("c".into(), Arc::new(json!(3)), t0);
        assert_eq!(c.len(), 2);
        assert!(c.get("a", t0).is_none());
        assert!(c.get("b", t0).is_some() && c.get("c", t0).is_some());
        // replacing a key does not let its old position evict the new value
        c.insert("b".into(), Arc::new(json!(22)), t0 + Duration::from_secs(1));
        c.insert("d".into(), Arc::new(json!(4)), t0 + Duration::from_secs(1));
        assert_eq!(
            c.get("b", t0 + Duration::from_secs(1)).as_deref(),
            Some(&json!(22))
        );
        assert!(c.get("c", t0 + Duration::from_secs(1)).is_none());
        for i in 0..1000 {
            c.insert("b".into(), Arc::new(json!(i)), t0 + Duration::from_secs(2));
        }
        assert!(c.order.len() <= 2 * 2 + 16, "order queue stays bounded");
    }

    #[test]
    fn zero_ttl_disables() {
        let t0 = Instant::now();
        let mut c = Cache::new(Duration::ZERO, 8);
        c.insert("a".into(), Arc::new(json!(1)), t0);
        assert!(c.get("a", t0).is_none());
    }
}
