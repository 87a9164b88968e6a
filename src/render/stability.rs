//! Charts whose output changes from one render to the next with the same input: random
//! passwords (`randAlphaNum`), generated certificates (`genCA`), UUIDs, timestamps. Applied as
//! they come, such a chart changes the cluster on every render — a new password at each
//! commit — and looks like permanent drift. The pipeline renders such a chart twice and
//! names the objects and fields that differ (never their values), so the user can pin them
//! in values or turn on `helm.lookup`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::object::Manifest;

/// Template functions whose result is not a function of the input.
const RANDOM_FUNCTIONS: &[&str] = &[
    "randAlphaNum",
    "randAlpha",
    "randNumeric",
    "randAscii",
    "randInt",
    "randBytes",
    "shuffle",
    "uuidv4",
    "genCA",
    "genCAWithKey",
    "genPrivateKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "bcrypt",
    "htpasswd",
    "encryptAES",
    "now",
];

/// Fields named per object at most: enough to act on, bounded for an event.
const MAX_FIELDS: usize = 5;

/// Files read at most when looking for random functions.
const MAX_FILES: usize = 2_000;

/// One object whose fields differ between two renders of the same input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unstable {
    /// `Kind/namespace/name` (or `Kind/name`).
    pub object: String,
    /// Paths of the differing fields (`/data/password`), at most [`MAX_FIELDS`]; empty when
    /// the object is in one render only (a random name).
    pub fields: Vec<String>,
}

impl std::fmt::Display for Unstable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.fields.is_empty() {
            write!(f, "{} (its name changes)", self.object)
        } else {
            write!(f, "{} {}", self.object, self.fields.join(", "))
        }
    }
}

/// True when a template under `chart` (subcharts included) calls a random function; a chart
/// that cannot be read is assumed to.
pub fn may_be_random(chart: &Path) -> bool {
    let mut stack = vec![chart.to_path_buf()];
    let mut read = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return true;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            read += 1;
            if read > MAX_FILES {
                return true;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => {
                    let is_archive = path.extension().is_some_and(|e| e == "tgz");
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if is_archive || calls_random(&text) {
                        return true;
                    }
                }
                _ => {}
            }
        }
    }
    false
}

/// True when template text calls one of [`RANDOM_FUNCTIONS`] inside `{{ }}`.
fn calls_random(text: &str) -> bool {
    text.split("{{").skip(1).any(|action| {
        let action = action.split("}}").next().unwrap_or_default();
        // A field (`.Values.now`) or a variable (`$now`) stays one word, so it is not taken
        // for the function.
        action
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '$' | '_')))
            .any(|word| RANDOM_FUNCTIONS.contains(&word))
    })
}

fn identity(m: &Manifest) -> String {
    let kind = m.kind().unwrap_or("?");
    let name = m.name().unwrap_or("?");
    match m.namespace() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// The objects of `a` and `b` (two renders of the same input) that differ, in `a`'s order,
/// then those only in `b`.
pub fn unstable_objects(a: &[Manifest], b: &[Manifest]) -> Vec<Unstable> {
    let key = |m: &Manifest| (m.api_version().unwrap_or("").to_string(), identity(m));
    let mut others: BTreeMap<_, &Manifest> = b.iter().map(|m| (key(m), m)).collect();
    let mut out = Vec::new();
    for m in a {
        match others.remove(&key(m)) {
            Some(o) if o.object == m.object => {}
            Some(o) => {
                let mut fields = Vec::new();
                differing_fields(&m.object, &o.object, &mut String::new(), &mut fields);
                out.push(Unstable {
                    object: identity(m),
                    fields,
                });
            }
            None => out.push(Unstable {
                object: identity(m),
                fields: Vec::new(),
            }),
        }
    }
    out.extend(others.into_values().map(|m| Unstable {
        object: identity(m),
        fields: Vec::new(),
    }));
    out
}

/// Appends the JSON pointers where `a` and `b` differ, down to the first differing leaf.
fn differing_fields(a: &Value, b: &Value, at: &mut String, out: &mut Vec<String>) {
    if out.len() >= MAX_FIELDS || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                let null = Value::Null;
                differing_fields(
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    at,
                    out,
                );
                at.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                differing_fields(p, q, at, out);
                at.truncate(len);
            }
        }
        _ => out.push(if at.is_empty() {
            "/".into()
        } else {
            at.clone()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Source;
    use serde_json::json;

    fn secret(name: &str, password: &str) -> Manifest {
        Manifest::new(
            Source::new("templates/secret.yaml", 0),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": "db"},
                   "data": {"user": "YWRtaW4=", "password": password}}),
        )
    }

    #[test]
    fn differing_fields_are_named_not_their_values() {
        let a = [secret("db", "c2VjcmV0MQ=="), secret("same", "eA==")];
        let b = [secret("db", "c2VjcmV0Mg=="), secret("same", "eA==")];
        let unstable = unstable_objects(&a, &b);
        assert_eq!(
            unstable,
            [Unstable {
                object: "Secret/db/db".into(),
                fields: vec!["/data/password".into()],
            }]
        );
        assert_eq!(unstable[0].to_string(), "Secret/db/db /data/password");
        assert!(!unstable[0].to_string().contains("c2VjcmV0"));
    }

    #[test]
    fn an_object_in_one_render_only_is_named() {
        let unstable = unstable_objects(&[secret("job-abcde", "x")], &[secret("job-fghij", "x")]);
        let shown: Vec<String> = unstable.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "Secret/db/job-abcde (its name changes)",
                "Secret/db/job-fghij (its name changes)"
            ]
        );
    }

    #[test]
    fn identical_renders_are_stable() {
        assert!(unstable_objects(&[secret("a", "x")], &[secret("a", "x")]).is_empty());
    }

    #[test]
    fn random_functions_are_found_in_actions_only() {
        assert!(calls_random("password: {{ randAlphaNum 16 | b64enc }}"));
        assert!(calls_random("{{- $ca := genCA \"x\" 365 }}"));
        assert!(calls_random("at: {{ now | date \"2006\" }}"));
        assert!(!calls_random(
            "# random text, now and then: {{ .Values.now }}"
        ));
        assert!(!calls_random("randAlphaNum outside an action"));
    }

    #[test]
    fn a_chart_directory_is_searched_with_its_subcharts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("charts/db/templates");
        std::fs::create_dir_all(&sub).expect("mkdir");
        std::fs::write(dir.path().join("Chart.yaml"), "name: x\n").expect("write");
        assert!(!may_be_random(dir.path()));
        std::fs::write(sub.join("s.yaml"), "p: {{ uuidv4 }}\n").expect("write");
        assert!(may_be_random(dir.path()));
    }
}
