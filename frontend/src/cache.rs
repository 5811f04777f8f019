//! The product cache: replies to product queries, kept until the catalog says the product changed.
//!
//! The race it guards: a query misses, asks the catalog, and a purchase changes the stock and its
//! invalidation arrives before the query's reply is stored. Storing it then would keep the old stock
//! until the next change. So every name has a generation that each invalidation bumps; a miss notes the
//! generation before it asks the catalog and stores the reply only if the generation is unchanged.

use shared::protocol::Product;
use std::collections::HashMap;

/// A bounded map of product replies with invalidation generations. Not locked: the front-end keeps it
/// behind a mutex.
#[derive(Debug, Default)]
pub struct Cache {
    capacity: usize,
    entries: HashMap<String, (Product, u64)>,
    generations: HashMap<String, u64>,
    clock: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to ask the catalog.
    pub misses: u64,
}

impl Cache {
    /// A cache of at most `capacity` products (0: caches nothing).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            ..Cache::default()
        }
    }

    /// The cached reply for `name`, or the generation to pass to [`Cache::store`] after a miss.
    pub fn lookup(&mut self, name: &str) -> Result<Product, u64> {
        self.clock += 1;
        match self.entries.get_mut(name) {
            Some((p, used)) => {
                *used = self.clock;
                self.hits += 1;
                Ok(p.clone())
            }
            None => {
                self.misses += 1;
                Err(self.generations.get(name).copied().unwrap_or(0))
            }
        }
    }

    /// Stores a reply fetched after a miss that saw `generation`, unless `name` was invalidated since.
    /// When full, the least recently used entry makes room.
    pub fn store(&mut self, product: Product, generation: u64) -> bool {
        if self.capacity == 0
            || self.generations.get(&product.name).copied().unwrap_or(0) != generation
        {
            return false;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&product.name) {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(n, _)| n.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        self.entries
            .insert(product.name.clone(), (product, self.clock));
        true
    }

    /// Drops `name` and makes replies fetched before now unstorable.
    pub fn invalidate(&mut self, name: &str) {
        self.entries.remove(name);
        *self.generations.entry(name.to_string()).or_default() += 1;
    }

    /// Products cached now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tux(quantity: u64) -> Product {
        Product {
            name: "Tux".into(),
            price: 25.99,
            quantity,
        }
    }

    #[test]
    fn a_miss_then_a_store_then_a_hit() {
        let mut c = Cache::new(10);
        let g = c.lookup("Tux").unwrap_err();
        assert!(c.store(tux(100), g));
        assert_eq!(c.lookup("Tux"), Ok(tux(100)));
        assert_eq!((c.hits, c.misses), (1, 1));
    }

    #[test]
    fn an_invalidation_removes_the_entry() {
        let mut c = Cache::new(10);
        let g = c.lookup("Tux").unwrap_err();
        c.store(tux(100), g);
        c.invalidate("Tux");
        assert!(c.lookup("Tux").is_err());
    }

    #[test]
    fn a_reply_fetched_before_an_invalidation_is_not_stored_after_it() {
        let mut c = Cache::new(10);
        let g = c.lookup("Tux").unwrap_err();
        c.invalidate("Tux"); // a purchase happened while the catalog was being asked
        assert!(!c.store(tux(100), g));
        assert!(c.lookup("Tux").is_err());
        let g = c.lookup("Tux").unwrap_err();
        assert!(c.store(tux(99), g));
    }

    #[test]
    fn capacity_is_kept_by_dropping_the_least_recently_used() {
        let mut c = Cache::new(2);
        for name in ["A", "B"] {
            let g = c.lookup(name).unwrap_err();
            c.store(
                Product {
                    name: name.into(),
                    price: 1.0,
                    quantity: 1,
                },
                g,
            );
        }
        assert!(c.lookup("A").is_ok());
        let g = c.lookup("C").unwrap_err();
        c.store(
            Product {
                name: "C".into(),
                price: 1.0,
                quantity: 1,
            },
            g,
        );
        assert_eq!(c.len(), 2);
        assert!(c.lookup("B").is_err(), "B was the least recently used");
        assert!(c.lookup("A").is_ok());
    }

    fn product(name: &str) -> Product {
        Product {
            name: name.into(),
            price: 1.0,
            quantity: 1,
        }
    }

    #[test]
    fn a_store_is_newer_than_a_hit_just_before_it() {
        // Ties between entries would be broken by the map's random order: run the case with many
        // maps, so that a store not counting as its own use shows.
        for _ in 0..32 {
            let mut c = Cache::new(2);
            let g = c.lookup("A").unwrap_err();
            assert!(c.store(product("A"), g));
            let g = c.lookup("B").unwrap_err();
            assert!(c.lookup("A").is_ok());
            assert!(c.store(product("B"), g));
            let g = c.lookup("C").unwrap_err();
            assert!(c.store(product("C"), g));
            assert_eq!(c.len(), 2);
            assert!(c.lookup("B").is_ok(), "B was stored after A was last used");
            assert!(c.lookup("A").is_err());
        }
    }

    #[test]
    fn storing_an_entry_again_evicts_nothing() {
        let mut c = Cache::new(2);
        for name in ["A", "B", "A"] {
            let g = c.lookup(name).map(|_| 0).unwrap_or_else(|g| g);
            assert!(c.store(product(name), g));
        }
        assert_eq!(c.len(), 2);
        assert!(!c.is_empty());
        assert!(c.lookup("B").is_ok());
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let mut c = Cache::new(0);
        let g = c.lookup("Tux").unwrap_err();
        assert!(!c.store(tux(1), g));
        assert!(c.is_empty());
    }
}
