//! The inventory: which objects an inventory name owns, recorded in the cluster.
//!
//! A new process (the CLI run tomorrow, a restarted agent) learns from it what it applied last
//! time, so that objects removed from Git can be pruned. It is stored as ConfigMaps named
//! `driftless-inv-<name>-<shard>` in the inventory namespace, one line per object, readable with
//! `kubectl get configmap -l driftless.dev/inventory-shard=<name> -o yaml`:
//!
//! ```text
//! Deployment.apps azure-vote/azure-vote-front v1 3f2a9c0d11e4b7a2 9b1c44e0a7d2c315
//! Namespace _/azure-vote v1 0d1e2f3a4b5c6d7e 1a2b3c4d5e6f7a8b
//! ```
//!
//! (kind.group, namespace/name with `_` for cluster-scoped, version, hash of the manifest we
//! applied, hash of the fields we own after applying). The two hashes make an unchanged re-sync
//! nearly free: an object whose manifest hash and owned-fields hash are both unchanged cannot
//! have drifted in any field we manage (a hand edit moves ownership of the edited fields away
//! from us, which changes the second hash), so it needs no request at all.
//!
//! NB: etcd limits an object to 1.5 MiB, hence the shards: at most [`SHARD_CAPACITY`] entries
//! each, the shard count a power of two and entries placed by a hash of their identity, so that
//! growing or shrinking moves entries between a shard `i` and `i + k` only. [`Inventory::plan_write`]
//! orders the writes so that a crash between any two of them loses no entry.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use sha2::{Digest, Sha256};

// The hashes moved to `crate::hash` (source names files with them too); re-exported here for
// the inventory's users.
pub use crate::hash::{hash_json, hash_text};
use crate::object::{ObjectKey, ObjectRef};
use crate::plan::to_prune;

/// Entries per shard ConfigMap (about 150 bytes each: well under etcd's 1.5 MiB).
pub const SHARD_CAPACITY: usize = 2000;
/// Label on every inventory shard, valued with the inventory name.
pub const LABEL_SHARD: &str = "driftless.dev/inventory-shard";
/// The data key of a shard ConfigMap holding the entry lines.
pub const DATA_KEY: &str = "objects";

/// What the inventory remembers of one applied object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The API version the object was applied with.
    pub version: String,
    /// Hash of the manifest as sent ([`hash_json`]); empty when not applied yet.
    pub manifest_hash: String,
    /// Hash of the fields we own after applying ([`hash_json`] of our managedFields entry).
    pub fields_hash: String,
}

/// Objects owned by one inventory name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub entries: BTreeMap<ObjectKey, Entry>,
}

/// An inventory line that cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("corrupt inventory line {line:?} in shard {shard}: {reason}")]
pub struct ParseError {
    pub shard: String,
    pub line: String,
    pub reason: &'static str,
}

/// Formats a key as `Kind.group namespace/name` (`_` for no namespace).
pub struct KeyDisplay<'a>(pub &'a ObjectKey);

impl fmt::Display for KeyDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.0;
        if k.group.is_empty() {
            write!(f, "{}", k.kind)?;
        } else {
            write!(f, "{}.{}", k.kind, k.group)?;
        }
        write!(f, " {}/{}", k.namespace.as_deref().unwrap_or("_"), k.name)
    }
}

impl Inventory {
    /// Parses the entry lines of one shard into `self` (later duplicates win; they are equal
    /// unless a write was interrupted, when either is safe).
    ///
    /// # Errors
    /// A line that does not have the documented shape.
    pub fn parse_shard(&mut self, shard: &str, text: &str) -> Result<(), ParseError> {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let err = |reason| ParseError {
                shard: shard.to_string(),
                line: line.to_string(),
                reason,
            };
            let fields: Vec<&str> = line.split(' ').collect();
            let [kind_group, ns_name, version, manifest_hash, fields_hash] = fields[..] else {
                return Err(err("expected 5 space-separated fields"));
            };
            let (kind, group) = kind_group.split_once('.').unwrap_or((kind_group, ""));
            let (ns, name) = ns_name
                .split_once('/')
                .ok_or_else(|| err("expected namespace/name"))?;
            if kind.is_empty() || name.is_empty() {
                return Err(err("empty kind or name"));
            }
            let key = ObjectKey {
                group: group.to_string(),
                kind: kind.to_string(),
                namespace: (ns != "_").then(|| ns.to_string()),
                name: name.to_string(),
            };
            let entry = Entry {
                version: version.to_string(),
                manifest_hash: dash_to_empty(manifest_hash),
                fields_hash: dash_to_empty(fields_hash),
            };
            self.entries.insert(key, entry);
        }
        Ok(())
    }

    /// The objects of this inventory that are not in `desired`, in prune order (reverse kind
    /// order, Namespaces last).
    pub fn gone(&self, desired: &HashSet<&ObjectKey>) -> Vec<ObjectRef> {
        let all: Vec<ObjectRef> = self
            .entries
            .iter()
            .map(|(k, e)| k.with_version(&e.version))
            .collect();
        let keep: Vec<ObjectRef> = all
            .iter()
            .filter(|r| desired.contains(&r.key()))
            .cloned()
            .collect();
        to_prune(&all, &keep)
    }

    /// The number of shards for `n` entries: the smallest power of two holding them.
    pub fn shard_count(n: usize) -> usize {
        n.div_ceil(SHARD_CAPACITY).max(1).next_power_of_two()
    }

    /// Splits the entries into `shards` texts by a hash of each key.
    pub fn render_shards(&self, shards: usize) -> Vec<String> {
        let mut out = vec![String::new(); shards];
        for (key, e) in &self.entries {
            let text = &mut out[shard_of(key, shards)];
            let line = format!(
                "{} {} {} {}\n",
                KeyDisplay(key),
                e.version,
                empty_to_dash(&e.manifest_hash),
                empty_to_dash(&e.fields_hash)
            );
            text.push_str(&line);
        }
        out
    }

    /// The writes that turn the stored shards `old` (index → text) into this inventory, in an
    /// order where a crash after any prefix of them loses no entry present in both: first every
    /// shard that gains entries is written with the union of its old and new entries, then each
    /// shard gets its exact new content, then surplus shards are deleted. Shards whose text does
    /// not change are not written.
    pub fn plan_write(&self, old: &BTreeMap<usize, String>) -> Vec<ShardWrite> {
        let count = Self::shard_count(self.entries.len());
        let new = self.render_shards(count);
        let mut stored = old.clone();
        let mut writes = Vec::new();
        // Gains first (keeping what the shard had), so that an entry leaving a shard always
        // has its new home written before it is removed from the old one.
        // A shard whose entries only change their hashes gains nothing: one write is enough.
        for (i, text) in new.iter().enumerate() {
            let before = stored.get(&i).map(String::as_str).unwrap_or("");
            let new_keys = keys(text);
            if new_keys.difference(&keys(before)).next().is_some() {
                let kept: Vec<&str> = lines(before)
                    .into_iter()
                    .filter(|l| !new_keys.contains(line_key(l)))
                    .collect();
                // Nothing to keep (a first write, or a shard that only grows): the new text
                // is the union, and one write is enough.
                let union = if kept.is_empty() {
                    text.clone()
                } else {
                    let union: BTreeSet<&str> = lines(text).into_iter().chain(kept).collect();
                    union.into_iter().map(|l| format!("{l}\n")).collect()
                };
                writes.push(ShardWrite::Put(i, union.clone()));
                stored.insert(i, union);
            }
        }
        for (i, text) in new.into_iter().enumerate() {
            if stored.get(&i) != Some(&text) {
                writes.push(ShardWrite::Put(i, text));
            }
        }
        writes.extend(
            old.keys()
                .filter(|i| **i >= count)
                .map(|i| ShardWrite::Delete(*i)),
        );
        writes
    }
}

/// One write of [`Inventory::plan_write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardWrite {
    /// Create or replace shard `i` with this text.
    Put(usize, String),
    /// Delete shard `i`.
    Delete(usize),
}

fn lines(text: &str) -> BTreeSet<&str> {
    text.lines().filter(|l| !l.is_empty()).collect()
}

/// The object a shard line is about: its first two fields (`kind.group namespace/name`).
fn line_key(line: &str) -> &str {
    let mut fields = line.match_indices(' ');
    match (fields.next(), fields.next()) {
        (Some(_), Some((end, _))) => &line[..end],
        _ => line,
    }
}

fn keys(text: &str) -> BTreeSet<&str> {
    lines(text).into_iter().map(line_key).collect()
}

fn shard_of(key: &ObjectKey, shards: usize) -> usize {
    let digest = Sha256::digest(KeyDisplay(key).to_string().as_bytes());
    let n = u64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ]);
    // A power-of-two modulus: growing from k to 2k shards keeps an entry in shard i or i + k.
    (n % shards as u64) as usize
}

fn empty_to_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn dash_to_empty(s: &str) -> String {
    if s == "-" {
        String::new()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, group: &str, ns: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
        }
    }

    fn entry(h: &str) -> Entry {
        Entry {
            version: "v1".into(),
            manifest_hash: h.into(),
            fields_hash: String::new(),
        }
    }

    fn inventory(n: usize) -> Inventory {
        let mut inv = Inventory::default();
        for i in 0..n {
            inv.entries.insert(
                key("ConfigMap", "", Some("ns"), &format!("cm-{i}")),
                entry("ab"),
            );
        }
        inv
    }

    #[test]
    fn round_trips_through_text() {
        let mut inv = Inventory::default();
        inv.entries.insert(
            key("Deployment", "apps", Some("web"), "front"),
            entry("0123"),
        );
        inv.entries
            .insert(key("Namespace", "", None, "web"), entry(""));
        inv.entries.insert(
            key("ClusterRole", "rbac.authorization.k8s.io", None, "system:x"),
            entry("9"),
        );
        let text = inv.render_shards(1).remove(0);
        assert!(
            text.contains("Deployment.apps web/front v1 0123 -\n"),
            "{text}"
        );
        assert!(text.contains("Namespace _/web v1 - -\n"), "{text}");
        let mut back = Inventory::default();
        back.parse_shard("0", &text).expect("parses");
        assert_eq!(back, inv);
    }

    #[test]
    fn rejects_corrupt_lines() {
        let mut inv = Inventory::default();
        let err = inv
            .parse_shard("3", "Deployment.apps nonamespace v1 a b")
            .expect_err("corrupt");
        assert!(err.to_string().contains("shard 3"), "{err}");
        assert!(inv.parse_shard("3", "too few").is_err());
    }

    #[test]
    fn shard_count_is_a_power_of_two_within_capacity() {
        assert_eq!(Inventory::shard_count(0), 1);
        assert_eq!(Inventory::shard_count(SHARD_CAPACITY), 1);
        assert_eq!(Inventory::shard_count(SHARD_CAPACITY + 1), 2);
        assert_eq!(Inventory::shard_count(5 * SHARD_CAPACITY), 8);
        let inv = inventory(10_000);
        let shards = inv.render_shards(Inventory::shard_count(10_000));
        assert!(
            shards.iter().all(|s| s.len() < 1024 * 1024),
            "each shard under 1 MiB"
        );
        assert_eq!(
            shards.iter().map(|s| s.lines().count()).sum::<usize>(),
            10_000
        );
    }

    #[test]
    fn unchanged_inventory_needs_no_write() {
        let inv = inventory(10);
        let old: BTreeMap<usize, String> = inv.render_shards(1).into_iter().enumerate().collect();
        assert!(inv.plan_write(&old).is_empty());
    }

    #[test]
    fn a_first_write_or_a_shard_that_only_grows_takes_one_write() {
        // Mixed kinds: the shard's line order (by text) differs from the entries' key order.
        let mixed = |n: usize| {
            let mut inv = inventory(n);
            for (kind, group, ns) in [("Namespace", "", None), ("Deployment", "apps", Some("ns"))] {
                inv.entries.insert(key(kind, group, ns, "x"), entry("cd"));
            }
            inv
        };
        let first = mixed(10);
        assert_eq!(
            first.plan_write(&BTreeMap::new()),
            vec![ShardWrite::Put(0, first.render_shards(1).remove(0))]
        );
        let old: BTreeMap<usize, String> = first.render_shards(1).into_iter().enumerate().collect();
        let grown = mixed(12);
        assert_eq!(
            grown.plan_write(&old),
            vec![ShardWrite::Put(0, grown.render_shards(1).remove(0))]
        );
    }

    #[test]
    fn changed_hashes_alone_take_one_write_per_shard() {
        let old_inv = inventory(10);
        let old: BTreeMap<usize, String> =
            old_inv.render_shards(1).into_iter().enumerate().collect();
        let mut new_inv = old_inv.clone();
        for e in new_inv.entries.values_mut().take(3) {
            e.manifest_hash = "changed".into();
        }
        let writes = new_inv.plan_write(&old);
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_crash_safe(&old_inv, &new_inv);
        // A new entry besides changed hashes: the union (each key once) is already the new text.
        let mut grown = new_inv.clone();
        let extra = inventory(11);
        let (k, e) = extra
            .entries
            .iter()
            .find(|(k, _)| !grown.entries.contains_key(*k))
            .expect("an 11th key");
        grown.entries.insert(k.clone(), e.clone());
        let writes = grown.plan_write(&old);
        assert_eq!(writes.len(), 1, "{writes:?}");
        if let ShardWrite::Put(_, union) = &writes[0] {
            let keys: Vec<&str> = union.lines().map(line_key).collect();
            let unique: BTreeSet<&str> = keys.iter().copied().collect();
            assert_eq!(keys.len(), unique.len(), "{union}");
            assert_eq!(keys.len(), 11, "{union}");
        }
        assert_crash_safe(&old_inv, &grown);
    }

    /// Applies a prefix of the writes and checks every entry kept in both is still stored.
    fn assert_crash_safe(old_inv: &Inventory, new_inv: &Inventory) {
        let old: BTreeMap<usize, String> = old_inv
            .render_shards(Inventory::shard_count(old_inv.entries.len()))
            .into_iter()
            .enumerate()
            .collect();
        let writes = new_inv.plan_write(&old);
        for cut in 0..=writes.len() {
            let mut stored = old.clone();
            for w in &writes[..cut] {
                match w {
                    ShardWrite::Put(i, t) => {
                        stored.insert(*i, t.clone());
                    }
                    ShardWrite::Delete(i) => {
                        stored.remove(i);
                    }
                }
            }
            let mut read = Inventory::default();
            for (i, t) in &stored {
                read.parse_shard(&i.to_string(), t).expect("parses");
            }
            for k in new_inv
                .entries
                .keys()
                .filter(|k| old_inv.entries.contains_key(*k))
            {
                assert!(
                    read.entries.contains_key(k),
                    "entry {k:?} lost after {cut} writes"
                );
            }
            if cut == writes.len() {
                assert_eq!(read, *new_inv);
            }
        }
    }

    #[test]
    fn growing_and_shrinking_across_shards_never_loses_an_entry() {
        let small = inventory(SHARD_CAPACITY - 5);
        let big = inventory(3 * SHARD_CAPACITY);
        assert_crash_safe(&small, &big);
        assert_crash_safe(&big, &small);
    }
}
