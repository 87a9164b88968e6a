//! The render cache: rendered objects per (commit, path, options), so that an unchanged
//! re-sync (the drift-correction interval, a retry) does not run kustomize or helm again.
//!
//! The key is a SHA-256 over the commit, the path and everything else that can change the
//! output: the render spec, the release name and namespace, the substitution variables and a
//! hash of the chart repository credentials. A commit is immutable, so nothing else needs to
//! invalidate an entry; a chart pulled from a repository at a fixed version is assumed
//! immutable too (as Flux and Argo CD assume). A chart's render also depends on the cluster's
//! capabilities (version and served APIs) and on install vs upgrade: its entry keeps a
//! fingerprint of these "chart inputs" and counts as a miss once they change (a cluster
//! upgrade, a newly installed CRD, the first apply), while plain manifests and Kustomize
//! renders, which do not depend on them, stay cached. The least recently used
//! entry goes when the cache is full.
//!
//! Entries hold each object's JSON text, not its tree: a `serde_json::Value` tree takes about
//! six times the memory of its text, and a cached render of thousands of objects kept as trees
//! doubled the agent's peak (the cache's copy plus the copy each sync labels and sends).
//! Parsing the text back costs a few milliseconds per thousand objects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::object::{Manifest, Source};

/// Entries kept by default: one per GitSync is enough, a few spare for changing commits.
pub const DEFAULT_CAPACITY: usize = 256;

/// An LRU map from render keys to rendered objects, with counters of hits and renders.
pub struct RenderCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Inner {
    tick: u64,
    entries: HashMap<String, (u64, Arc<Compact>)>,
}

/// A render as the cache keeps it: each object's origin and JSON text, and the fingerprint of
/// the chart inputs it was rendered for when it depends on them.
struct Compact {
    objects: Vec<(Source, Box<str>)>,
    chart_inputs: Option<Box<str>>,
}

impl Compact {
    fn new(manifests: &[Manifest], chart_inputs: Option<&str>) -> Self {
        Self {
            objects: manifests
                .iter()
                .map(|m| (m.source.clone(), m.object.to_string().into_boxed_str()))
                .collect(),
            chart_inputs: chart_inputs.map(Into::into),
        }
    }

    /// True unless the render depends on chart inputs other than `current`.
    fn valid_for(&self, current: &str) -> bool {
        self.chart_inputs.as_deref().is_none_or(|c| c == current)
    }

    /// The objects again; `None` if a text does not parse (it was written by `new`, so never).
    fn manifests(&self) -> Option<Vec<Manifest>> {
        self.objects
            .iter()
            .map(|(source, text)| {
                let object = serde_json::from_str(text).ok()?;
                Some(Manifest::new(source.clone(), object))
            })
            .collect()
    }
}

impl Default for RenderCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl RenderCache {
    /// A cache holding at most `capacity` renders.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The key of a render: commit, path and every option (`extra` holds the non-spec ones).
    pub fn key(commit: &str, path: &str, options: &Value) -> String {
        let text = json!([commit, path, options]).to_string();
        format!("{:x}", Sha256::digest(text.as_bytes()))
    }

    /// A fresh copy of the cached render for `key`, counting a hit or a miss. A chart's render
    /// made for other chart inputs than `chart_inputs` is a miss.
    pub fn get(&self, key: &str, chart_inputs: &str) -> Option<Vec<Manifest>> {
        let found = self.inner.lock().ok().and_then(|mut inner| {
            inner.tick += 1;
            let tick = inner.tick;
            inner.entries.get_mut(key).map(|(used, v)| {
                *used = tick;
                v.clone()
            })
        });
        // Parsed outside the lock: other GitSyncs' lookups do not wait for it.
        let found = found
            .filter(|compact| compact.valid_for(chart_inputs))
            .and_then(|compact| compact.manifests());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores a render, evicting the least recently used entry when full; `chart_inputs` is
    /// the fingerprint of those it was rendered for (a chart's), `None` for other renders.
    pub fn insert(&self, key: String, manifests: &[Manifest], chart_inputs: Option<&str>) {
        let compact = Arc::new(Compact::new(manifests, chart_inputs));
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.tick += 1;
        let tick = inner.tick;
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&key) {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.entries.remove(&k);
            }
        }
        inner.entries.insert(key, (tick, compact));
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_and_counters() {
        let cache = RenderCache::new(2);
        let k = |s: &str| RenderCache::key(s, "app", &json!({}));
        assert_ne!(k("a"), k("b"));
        assert_ne!(
            RenderCache::key("a", "app", &json!({"v": 1})),
            RenderCache::key("a", "app", &json!({"v": 2}))
        );
        assert!(cache.get(&k("a"), "").is_none());
        cache.insert(k("a"), &[], None);
        cache.insert(k("b"), &[], None);
        assert!(cache.get(&k("a"), "").is_some()); // a is now more recent than b
        cache.insert(k("c"), &[], None);
        assert!(cache.get(&k("b"), "").is_none(), "b was evicted");
        assert!(cache.get(&k("a"), "").is_some());
        assert!(cache.get(&k("c"), "").is_some());
        assert_eq!(cache.stats(), (3, 2));
    }

    #[test]
    fn a_chart_render_is_stale_once_the_capabilities_change() {
        let cache = RenderCache::new(4);
        cache.insert("chart".into(), &[], Some("v1.35"));
        cache.insert("plain".into(), &[], None);
        assert!(cache.get("chart", "v1.35").is_some());
        assert!(cache.get("chart", "v1.36").is_none(), "rendered for v1.35");
        assert!(
            cache.get("plain", "v1.36").is_some(),
            "needs no capabilities"
        );
    }

    #[test]
    fn a_cached_render_comes_back_equal() {
        let cache = RenderCache::new(2);
        let manifests = vec![
            Manifest::new(
                Source::new("a.yaml", 0),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                       "data": {"z": "1", "a": "é\n\"q\""}}),
            ),
            Manifest::new(
                Source::new("dir/b.yaml", 3),
                json!({"kind": "X", "spec": {"f": 0.1, "g": 1e300, "i": -7, "n": null,
                                             "l": [true, {"k": []}]}}),
            ),
        ];
        cache.insert("k".into(), &manifests, None);
        assert_eq!(cache.get("k", ""), Some(manifests.clone()));
        // Every get is a copy of its own: a sync may label it without touching the cache.
        let mut copy = cache.get("k", "").unwrap();
        copy[0].object["metadata"]["name"] = json!("changed");
        assert_eq!(cache.get("k", ""), Some(manifests));
    }
}
