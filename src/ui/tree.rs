//! The resource tree of a GitSync's page: its objects grouped by namespace and kind, each with
//! the objects it owns below it (Deployment → ReplicaSet → Pod, StatefulSet and DaemonSet →
//! Pod, CronJob → Job → Pod: whatever `ownerReferences` say), every node with its health as a
//! word and the reason. Pure: [`build`] takes what `objects` read; `html::tree` renders it.
//!
//! Large trees stay usable by collapsing: a kind group is open when the whole tree is small
//! ([`OPEN_ALL_UP_TO`] objects) or when it holds a node that is not healthy or has drifted, so a
//! GitSync of 1,000 objects opens at its problems; a namespace is open when it is small or has
//! such a group open.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::health::{Health, HealthStatus};

/// Trees with at most this many managed objects have every group open.
pub const OPEN_ALL_UP_TO: usize = 50;
/// A namespace with at most this many managed objects is open.
pub const OPEN_NAMESPACE_UP_TO: usize = 200;
/// How deep owned objects are followed below a managed one (Deployment → ReplicaSet → Pod is
/// 2; CronJob → Job → Pod too). Also what stops an ownership cycle.
pub const MAX_DEPTH: usize = 4;

/// A node's health, as the page says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthWord {
    Healthy,
    Progressing,
    Failed,
    /// In the inventory but not in the cluster (deleted by hand, or its kind is not served).
    Missing,
}

impl HealthWord {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::Progressing => "Progressing",
            Self::Failed => "Failed",
            Self::Missing => "Missing",
        }
    }

    /// For `data-health` and the stylesheet.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Progressing => "progressing",
            Self::Failed => "failed",
            Self::Missing => "missing",
        }
    }
}

/// A health word and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHealth {
    pub word: HealthWord,
    pub reason: String,
}

impl NodeHealth {
    /// From kstatus (or CEL) health; "no status to wait for" (every ConfigMap, Secret,
    /// Service…) says nothing more than "Healthy", and is left out.
    pub fn of(h: &Health) -> Self {
        let word = match h.status {
            HealthStatus::Current => HealthWord::Healthy,
            HealthStatus::InProgress => HealthWord::Progressing,
            HealthStatus::Failed => HealthWord::Failed,
        };
        let says_more = h.message != crate::health::NO_STATUS;
        Self {
            word,
            reason: if says_more {
                h.message.clone()
            } else {
                String::new()
            },
        }
    }

    /// An object the inventory lists and the cluster does not have.
    pub fn missing(reason: impl Into<String>) -> Self {
        Self {
            word: HealthWord::Missing,
            reason: reason.into(),
        }
    }
}

/// One object as read from the cluster (or missing from it), what the tree is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveObject {
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    /// Empty for a missing object.
    pub uid: String,
    /// The uids of its `ownerReferences`.
    pub owners: Vec<String>,
    pub health: NodeHealth,
    /// A field driftless applies was changed by someone else since the last sync.
    pub drifted: bool,
}

/// An object in the tree, with what it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: String,
    pub name: String,
    pub health: NodeHealth,
    pub drifted: bool,
    pub children: Vec<Node>,
}

/// A GitSync's objects of one kind in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindGroup {
    pub kind: String,
    pub nodes: Vec<Node>,
    /// Managed nodes not healthy (children not counted: a Pod starting is its owner's state).
    pub unhealthy: usize,
    pub drifted: usize,
    pub open: bool,
}

/// A GitSync's objects in one namespace, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceGroup {
    /// `None`: the cluster-scoped objects.
    pub namespace: Option<String>,
    pub kinds: Vec<KindGroup>,
    pub count: usize,
    pub open: bool,
}

impl NamespaceGroup {
    /// The heading: the namespace, or "Cluster-scoped".
    pub fn title(&self) -> &str {
        self.namespace.as_deref().unwrap_or("Cluster-scoped")
    }
}

/// The whole tree of one GitSync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Cluster-scoped first, then namespaces by name.
    pub namespaces: Vec<NamespaceGroup>,
    /// Managed objects.
    pub total: usize,
    pub unhealthy: usize,
    pub drifted: usize,
    /// Some node (child or not) is progressing: the page refreshes itself while so.
    pub progressing: bool,
}

/// Builds the tree of the `managed` objects, with the `others` they own (directly or not)
/// below them. Others that no managed object owns are left out.
pub fn build(managed: Vec<LiveObject>, others: Vec<LiveObject>) -> Tree {
    let mut owned: HashMap<String, Vec<LiveObject>> = HashMap::new();
    for o in others {
        for owner in &o.owners {
            owned.entry(owner.clone()).or_default().push(o.clone());
        }
    }
    let total = managed.len();
    let mut by_place: BTreeMap<(Option<String>, String), Vec<Node>> = BTreeMap::new();
    let mut progressing = false;
    for m in managed {
        let node = node(m.clone(), &owned, &mut HashSet::new(), 0);
        progressing |= any_progressing(&node);
        by_place
            .entry((m.namespace, m.kind))
            .or_default()
            .push(node);
    }
    let mut namespaces: BTreeMap<Option<String>, Vec<KindGroup>> = BTreeMap::new();
    for ((ns, kind), mut nodes) in by_place {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        namespaces
            .entry(ns)
            .or_default()
            .push(group(kind, nodes, total));
    }
    let namespaces: Vec<NamespaceGroup> = namespaces
        .into_iter()
        .map(|(namespace, kinds)| {
            let count = kinds.iter().map(|k| k.nodes.len()).sum();
            let open = count <= OPEN_NAMESPACE_UP_TO || kinds.iter().any(|k| k.open);
            NamespaceGroup {
                namespace,
                kinds,
                count,
                open,
            }
        })
        .collect();
    let sum = |f: fn(&KindGroup) -> usize| -> usize {
        namespaces.iter().flat_map(|n| &n.kinds).map(f).sum()
    };
    Tree {
        unhealthy: sum(|k| k.unhealthy),
        drifted: sum(|k| k.drifted),
        namespaces,
        total,
        progressing,
    }
}

fn group(kind: String, nodes: Vec<Node>, total: usize) -> KindGroup {
    let unhealthy = nodes
        .iter()
        .filter(|n| n.health.word != HealthWord::Healthy)
        .count();
    let drifted = nodes.iter().filter(|n| n.drifted).count();
    KindGroup {
        open: total <= OPEN_ALL_UP_TO || unhealthy > 0 || drifted > 0,
        kind,
        nodes,
        unhealthy,
        drifted,
    }
}

/// `o` with what it owns below it, `depth` levels under a managed object.
fn node(
    o: LiveObject,
    owned: &HashMap<String, Vec<LiveObject>>,
    seen: &mut HashSet<String>,
    depth: usize,
) -> Node {
    let mut children = Vec::new();
    if depth < MAX_DEPTH && !o.uid.is_empty() && seen.insert(o.uid.clone()) {
        for child in owned.get(&o.uid).into_iter().flatten() {
            children.push(node(child.clone(), owned, seen, depth + 1));
        }
        children.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    }
    Node {
        kind: o.kind,
        name: o.name,
        health: o.health,
        drifted: o.drifted,
        children,
    }
}

fn any_progressing(n: &Node) -> bool {
    n.health.word == HealthWord::Progressing || n.children.iter().any(any_progressing)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn obj(kind: &str, ns: Option<&str>, name: &str, uid: &str) -> LiveObject {
        LiveObject {
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
            uid: uid.into(),
            owners: Vec::new(),
            health: NodeHealth::of(&Health {
                status: HealthStatus::Current,
                message: "ready".into(),
            }),
            drifted: false,
        }
    }

    fn owned_by(mut o: LiveObject, owner: &str) -> LiveObject {
        o.owners.push(owner.into());
        o
    }

    fn progressing(mut o: LiveObject, reason: &str) -> LiveObject {
        o.health = NodeHealth {
            word: HealthWord::Progressing,
            reason: reason.into(),
        };
        o
    }

    #[test]
    fn deployments_own_replicasets_that_own_pods() {
        let managed = vec![
            obj("Deployment", Some("shop"), "web", "d1"),
            obj("ConfigMap", Some("shop"), "cfg", "c1"),
            obj("Namespace", None, "shop", "n1"),
        ];
        let others = vec![
            owned_by(obj("ReplicaSet", Some("shop"), "web-7d9", "r1"), "d1"),
            owned_by(
                progressing(
                    obj("Pod", Some("shop"), "web-7d9-b", "p2"),
                    "ContainerCreating",
                ),
                "r1",
            ),
            owned_by(obj("Pod", Some("shop"), "web-7d9-a", "p1"), "r1"),
            owned_by(obj("Pod", Some("other"), "stray", "p9"), "nobody"),
        ];
        let t = build(managed, others);
        assert_eq!(t.total, 3);
        let titles: Vec<&str> = t.namespaces.iter().map(NamespaceGroup::title).collect();
        assert_eq!(titles, ["Cluster-scoped", "shop"]);
        let shop = &t.namespaces[1];
        let kinds: Vec<&str> = shop.kinds.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(kinds, ["ConfigMap", "Deployment"]);
        let web = &shop.kinds[1].nodes[0];
        assert_eq!(web.children.len(), 1);
        let rs = &web.children[0];
        assert_eq!(
            (rs.kind.as_str(), rs.name.as_str()),
            ("ReplicaSet", "web-7d9")
        );
        let pods: Vec<(&str, &str)> = rs
            .children
            .iter()
            .map(|p| (p.name.as_str(), p.health.word.as_str()))
            .collect();
        assert_eq!(
            pods,
            [("web-7d9-a", "Healthy"), ("web-7d9-b", "Progressing")]
        );
        assert!(t.progressing, "a Pod starting keeps the page refreshing");
        assert_eq!(t.unhealthy, 0, "children are their owner's business");
    }

    #[test]
    fn cronjobs_own_jobs_that_own_pods_and_cycles_end() {
        let managed = vec![obj("CronJob", Some("ops"), "backup", "cj")];
        let others = vec![
            owned_by(obj("Job", Some("ops"), "backup-1", "j1"), "cj"),
            owned_by(obj("Pod", Some("ops"), "backup-1-x", "p1"), "j1"),
            // A cycle (impossible in a real cluster, but not our data to trust).
            owned_by(owned_by(obj("Pod", Some("ops"), "loop", "l1"), "p1"), "l1"),
        ];
        let t = build(managed, others);
        let cj = &t.namespaces[0].kinds[0].nodes[0];
        let job = &cj.children[0];
        let pod = &job.children[0];
        assert_eq!(pod.name, "backup-1-x");
        let depth = |mut n: &Node| {
            let mut d = 0;
            while let Some(c) = n.children.first() {
                n = c;
                d += 1;
            }
            d
        };
        assert!(depth(cj) <= MAX_DEPTH);
    }

    #[test]
    fn a_large_tree_opens_only_at_its_problems() {
        let mut managed: Vec<LiveObject> = (0..1000)
            .map(|i| {
                obj(
                    "ConfigMap",
                    Some(&format!("ns{}", i % 4)),
                    &format!("c{i:04}"),
                    &format!("u{i}"),
                )
            })
            .collect();
        managed[7].drifted = true;
        managed[10] = progressing(managed[10].clone(), "waiting");
        managed.push(LiveObject {
            uid: String::new(),
            health: NodeHealth::missing("not found"),
            ..obj("Secret", Some("ns3"), "gone", "")
        });
        let t = build(managed, Vec::new());
        assert_eq!((t.total, t.drifted, t.unhealthy), (1001, 1, 2));
        let open: Vec<(&str, &str)> = t
            .namespaces
            .iter()
            .flat_map(|n| n.kinds.iter().map(move |k| (n.title(), k)))
            .filter(|(_, k)| k.open)
            .map(|(n, k)| (n, k.kind.as_str()))
            .collect();
        // c0007 is in ns3, c0010 in ns2; the missing Secret in ns3.
        assert_eq!(
            open,
            [
                ("ns2", "ConfigMap"),
                ("ns3", "ConfigMap"),
                ("ns3", "Secret")
            ]
        );
        let ns_open: Vec<bool> = t.namespaces.iter().map(|n| n.open).collect();
        assert_eq!(ns_open, [false, false, true, true]);
        assert!(t.progressing);
    }

    #[test]
    fn a_reason_is_kept_only_when_it_says_more_than_the_word() {
        let h = |message: &str| Health {
            status: HealthStatus::Current,
            message: message.into(),
        };
        assert_eq!(NodeHealth::of(&h(crate::health::NO_STATUS)).reason, "");
        assert_eq!(
            NodeHealth::of(&h("2 replicas ready")).reason,
            "2 replicas ready"
        );
    }

    #[test]
    fn a_small_tree_is_open() {
        let t = build(vec![obj("ConfigMap", Some("a"), "x", "1")], Vec::new());
        assert!(t.namespaces[0].open && t.namespaces[0].kinds[0].open);
        assert!(!t.progressing);
        assert_eq!(build(Vec::new(), Vec::new()), Tree::default());
    }
}
