//! Tailoring a desired object to its live one before it is applied, so that driftless leaves
//! alone what the ignore rules and the `Merge` policy give to others. Pure: the live object
//! (with its `managedFields`) is read by the caller.
//!
//! - Fields other managers own (the managers a rule names, or every other manager under
//!   `Merge`) are left out of the apply: they stay as they are, and driftless does not own them.
//! - A field an ignore rule's path names is left out when another manager owns it; otherwise
//!   (driftless applied it and nobody took it yet) it is applied with its live value, so that
//!   it is neither reverted nor deleted. Once another manager writes it, it is left out.
//! - Nothing is tailored on creation: the values in Git are the starting point.
//!
//! List items are never removed (only fields inside them), and neither are the key fields that
//! identify an item (`name` of a container).

use serde_json::{Map, Value};

use super::managed::is_ours_or_adopted;
use super::policy::IgnoreRule;

/// What to leave out of one object's apply.
pub struct Tailoring<'a> {
    /// The rules for this object.
    pub rules: Vec<&'a IgnoreRule>,
    /// `Merge`: every field another manager owns is left out.
    pub merge: bool,
}

/// One step into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Tailors `desired` to `live` (see the module docs); returns the JSON pointers (into
/// `desired`) of what it left out or kept at its live value, sorted.
pub fn tailor(desired: &mut Value, live: &Value, how: &Tailoring<'_>) -> Vec<String> {
    let entries = live["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let others: Vec<&Value> = entries
        .iter()
        .filter(|e| !is_ours_or_adopted(e["manager"].as_str().unwrap_or_default()))
        .map(|e| &e["fieldsV1"])
        .collect();
    let mut out = Vec::new();
    for e in &entries {
        let manager = e["manager"].as_str().unwrap_or_default();
        let named = how
            .rules
            .iter()
            .any(|r| r.field_managers.iter().any(|m| m == manager));
        if (named || how.merge)
            && !is_ours_or_adopted(manager)
            && let Some(fields) = e["fieldsV1"].as_object()
        {
            strip_owned(fields, live, desired, "", &[], &mut out);
        }
    }
    for rule in &how.rules {
        for path in &rule.paths {
            let segs: Vec<String> = path.split('/').skip(1).map(unescape).collect();
            let at = Location {
                root: live,
                live: Some(live),
                live_path: Vec::new(),
                pointer: String::new(),
            };
            ignore_path(&segs, desired, at, &others, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn unescape(seg: &str) -> String {
    seg.replace("~1", "/").replace("~0", "~")
}

fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

/// Removes from `desired` the leaf fields `fields` (one manager's `fieldsV1` at this level)
/// marks, walking `live` along to resolve list items. `keys` are the key fields of the list
/// item this level is, never removed.
fn strip_owned(
    fields: &Map<String, Value>,
    live: &Value,
    desired: &mut Value,
    pointer: &str,
    keys: &[String],
    out: &mut Vec<String>,
) {
    for (k, sub) in fields {
        if let Some(name) = k.strip_prefix("f:") {
            if keys.iter().any(|key| key == name) {
                continue;
            }
            let Some(map) = desired.as_object_mut() else {
                continue;
            };
            let here = format!("{pointer}/{}", escape(name));
            let is_leaf = sub.as_object().is_none_or(|m| m.keys().all(|c| c == "."));
            if is_leaf {
                if map.remove(name).is_some() {
                    out.push(here);
                }
            } else if let (Some(d), Some(children)) = (map.get_mut(name), sub.as_object()) {
                strip_owned(children, &live[name], d, &here, &[], out);
            }
        } else if let Some(item_key) = k.strip_prefix("k:") {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(item_key) else {
                continue;
            };
            let (Some(items), Some(children)) = (desired.as_array_mut(), sub.as_object()) else {
                continue;
            };
            let found = items.iter().position(|i| has_key(i, &key));
            let live_item = live
                .as_array()
                .and_then(|l| l.iter().find(|i| has_key(i, &key)))
                .unwrap_or(&Value::Null);
            if let Some(at) = found {
                let names: Vec<String> = key.keys().cloned().collect();
                let here = format!("{pointer}/{at}");
                strip_owned(children, live_item, &mut items[at], &here, &names, out);
            }
        } else if let Some(index) = k.strip_prefix("i:").and_then(|i| i.parse::<usize>().ok())
            && let (Some(d), Some(children)) = (desired.get_mut(index), sub.as_object())
        {
            let here = format!("{pointer}/{index}");
            strip_owned(children, &live[index], d, &here, &[], out);
        }
        // "v:" set members and "." (the node itself) are never removed.
    }
}

/// True when the list item `item` carries every field of `key` with the same value.
fn has_key(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter().all(|(k, v)| item.get(k) == Some(v))
}

/// Where a walk is: in the live object (None: not there) and in the desired one.
struct Location<'l> {
    /// The live object's root, where ownership is looked up from.
    root: &'l Value,
    live: Option<&'l Value>,
    live_path: Vec<Step>,
    pointer: String,
}

/// Applies one ignore path (its remaining segments `segs`) at `at`.
fn ignore_path(
    segs: &[String],
    desired: &mut Value,
    at: Location<'_>,
    others: &[&Value],
    out: &mut Vec<String>,
) {
    let Some((seg, rest)) = segs.split_first() else {
        return;
    };
    // A trailing `*` names the list itself.
    if rest.is_empty()
        || (rest.len() == 1
            && rest[0] == "*"
            && desired.get(seg.as_str()).is_some_and(Value::is_array))
    {
        ignore_leaf(seg, desired, &at, others, out);
        return;
    }
    match desired {
        Value::Object(map) => {
            let Some(d) = map.get_mut(seg.as_str()) else {
                return;
            };
            let next = at.step(Step::Key(seg.clone()), escape(seg));
            ignore_path(rest, d, next, others, out);
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                if seg != "*" && seg.parse::<usize>().ok() != Some(i) {
                    continue;
                }
                let partner = at.live.and_then(|l| partner_index(l, item, i));
                let next = Location {
                    root: at.root,
                    live: partner.and_then(|p| at.live.and_then(|l| l.get(p))),
                    live_path: extend(&at.live_path, Step::Index(partner.unwrap_or(i))),
                    pointer: format!("{}/{i}", at.pointer),
                };
                ignore_path(rest, item, next, others, out);
            }
        }
        _ => {}
    }
}

impl<'l> Location<'l> {
    fn step(&self, step: Step, shown: String) -> Location<'l> {
        let live = match &step {
            Step::Key(k) => self.live.and_then(|l| l.get(k.as_str())),
            Step::Index(i) => self.live.and_then(|l| l.get(*i)),
        };
        Location {
            root: self.root,
            live,
            live_path: extend(&self.live_path, step),
            pointer: format!("{}/{shown}", self.pointer),
        }
    }
}

fn extend(path: &[Step], step: Step) -> Vec<Step> {
    let mut p = path.to_vec();
    p.push(step);
    p
}

/// The live list item that is `item`: the one with the same `name` when items have names
/// (containers, ports, env), else the one at the same index.
fn partner_index(live_list: &Value, item: &Value, index: usize) -> Option<usize> {
    let items = live_list.as_array()?;
    match item.get("name") {
        Some(name) => items.iter().position(|l| l.get("name") == Some(name)),
        None => (index < items.len()).then_some(index),
    }
}

/// The last segment of an ignore path: leave the field out, or keep it at its live value.
fn ignore_leaf(
    seg: &str,
    desired: &mut Value,
    at: &Location<'_>,
    others: &[&Value],
    out: &mut Vec<String>,
) {
    match desired {
        Value::Object(map) => {
            if !map.contains_key(seg) {
                return;
            }
            let live = at.live.and_then(|l| l.get(seg));
            let path = extend(&at.live_path, Step::Key(seg.to_owned()));
            match live {
                Some(v) if !owned_by_others(others, at.root, &path) => {
                    map.insert(seg.to_owned(), v.clone());
                }
                _ => {
                    map.remove(seg);
                }
            }
            out.push(format!("{}/{}", at.pointer, escape(seg)));
        }
        Value::Array(items) => {
            let live_items = at.live.and_then(Value::as_array);
            for (i, item) in items.iter_mut().enumerate() {
                if seg != "*" && seg.parse::<usize>().ok() != Some(i) {
                    continue;
                }
                let partner = at.live.and_then(|l| partner_index(l, item, i));
                // Items stay (never removed); with a live partner they take its value.
                if let Some(v) = partner.and_then(|p| live_items.and_then(|l| l.get(p))) {
                    *item = v.clone();
                    out.push(format!("{}/{i}", at.pointer));
                }
            }
        }
        _ => {}
    }
}

/// True when one of `others` (their `fieldsV1`) owns the field at `path` of `live`.
fn owned_by_others(others: &[&Value], live: &Value, path: &[Step]) -> bool {
    others.iter().any(|fields| owns(fields, live, path))
}

/// True when `fields` (a `fieldsV1` tree) reaches `path`, walking `live` alongside to match
/// list items: by index (`i:`), by their key fields (`k:`) or by value (`v:`).
fn owns(fields: &Value, live: &Value, path: &[Step]) -> bool {
    let Some((step, rest)) = path.split_first() else {
        return true;
    };
    let Some(map) = fields.as_object() else {
        return false;
    };
    match step {
        Step::Key(k) => map
            .get(&format!("f:{k}"))
            .is_some_and(|sub| owns(sub, &live[k.as_str()], rest)),
        Step::Index(i) => {
            let item = &live[*i];
            map.iter().any(|(k, sub)| {
                let is_item = if let Some(key) = k.strip_prefix("k:") {
                    matches!(serde_json::from_str::<Value>(key), Ok(Value::Object(key)) if has_key(item, &key))
                } else if let Some(value) = k.strip_prefix("v:") {
                    serde_json::from_str::<Value>(value).is_ok_and(|v| &v == item)
                } else {
                    k == &format!("i:{i}")
                };
                is_item && owns(sub, item, rest)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> IgnoreRule {
        serde_json::from_value(v).unwrap()
    }

    fn deployment(replicas: u32, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                   {"name": "app", "image": image}, {"name": "log", "image": "fluentbit:3"}]}}}})
    }

    /// Tailors `desired` to `live` by the one rule `r`.
    fn by_rule(desired: &mut Value, live: &Value, r: &IgnoreRule) -> Vec<String> {
        let how = Tailoring {
            rules: vec![r],
            merge: false,
        };
        tailor(desired, live, &how)
    }

    fn with_managers(mut live: Value, entries: Value) -> Value {
        live["metadata"]["managedFields"] = entries;
        live
    }

    #[test]
    fn a_field_scaled_by_another_manager_is_left_out() {
        let live = with_managers(
            deployment(5, "web:1"),
            json!([
                {"manager": "driftless", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale",
                 "fieldsV1": {"f:spec": {"f:replicas": {}}}}
            ]),
        );
        let mut desired = deployment(2, "web:1");
        let r = rule(json!({"paths": ["/spec/replicas"]}));
        let ignored = by_rule(&mut desired, &live, &r);
        assert_eq!(ignored, ["/spec/replicas"]);
        assert!(desired["spec"].get("replicas").is_none());
        assert_eq!(
            desired["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:1"
        );
    }

    #[test]
    fn a_field_nobody_else_owns_keeps_its_live_value() {
        let live = with_managers(
            deployment(3, "web:1"),
            json!([{"manager": "driftless", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]),
        );
        let mut desired = deployment(2, "web:1");
        let r = rule(json!({"paths": ["/spec/replicas"]}));
        by_rule(&mut desired, &live, &r);
        assert_eq!(
            desired["spec"]["replicas"], 3,
            "neither reverted nor deleted"
        );
    }

    #[test]
    fn wildcards_follow_list_items_by_name() {
        // Live lists the containers in another order, with an injected sidecar.
        let mut live = deployment(2, "web:1@sha256:abc");
        live["spec"]["template"]["spec"]["containers"] = json!([
            {"name": "istio-proxy", "image": "proxy:1"},
            {"name": "log", "image": "fluentbit:3.1"},
            {"name": "app", "image": "web:1@sha256:abc"}]);
        let live = with_managers(
            live,
            json!([{"manager": "mutator", "operation": "Update", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {"f:image": {}}, "k:{\"name\":\"log\"}": {"f:image": {}}}}}}}}]),
        );
        let mut desired = deployment(2, "web:1");
        let r = rule(json!({"paths": ["/spec/template/spec/containers/*/image"]}));
        let ignored = by_rule(&mut desired, &live, &r);
        assert_eq!(
            ignored,
            [
                "/spec/template/spec/containers/0/image",
                "/spec/template/spec/containers/1/image"
            ]
        );
        let containers = &desired["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers[0],
            json!({"name": "app"}),
            "the item and its key stay"
        );
        assert_eq!(containers.as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_wildcard_keeps_items_nobody_else_wrote_at_their_live_value() {
        // Only the app container's image was pinned by another manager.
        let live = with_managers(
            deployment(2, "web:1@sha256:abc"),
            json!([{"manager": "mutator", "operation": "Update", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {"f:image": {}}}}}}}}]),
        );
        let mut desired = deployment(2, "web:1");
        let r = rule(json!({"paths": ["/spec/template/spec/containers/*/image"]}));
        by_rule(&mut desired, &live, &r);
        let containers = &desired["spec"]["template"]["spec"]["containers"];
        assert!(containers[0].get("image").is_none(), "left to the mutator");
        assert_eq!(
            containers[1]["image"], "fluentbit:3",
            "kept: nobody else wrote it"
        );
    }

    #[test]
    fn field_managers_and_merge_leave_out_what_others_own() {
        let live = with_managers(
            deployment(2, "web:2"),
            json!([
                {"manager": "driftless", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
                {"manager": "mutator", "operation": "Update", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}},
                {"manager": "kubectl-client-side-apply", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
            ]),
        );
        let r = rule(json!({"fieldManagers": ["mutator"]}));
        let mut desired = deployment(2, "web:1");
        let ignored = by_rule(&mut desired, &live, &r);
        assert_eq!(ignored, ["/spec/template/spec/containers/0/image"]);
        assert_eq!(
            desired["spec"]["template"]["spec"]["containers"][0],
            json!({"name": "app"})
        );
        // Merge: the same, from every manager but driftless and the kubectl ones it adopts.
        let mut desired = deployment(2, "web:1");
        let merged = tailor(
            &mut desired,
            &live,
            &Tailoring {
                rules: vec![],
                merge: true,
            },
        );
        assert_eq!(merged, ["/spec/template/spec/containers/0/image"]);
        assert_eq!(desired["spec"]["replicas"], 2);
    }
}
