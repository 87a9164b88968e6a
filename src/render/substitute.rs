//! Flux-compatible variable substitution (`postBuild.substitute` / `substituteFrom`).
//!
//! Pure functions, no I/O: the agent reads the ConfigMaps and Secrets and passes their data in.
//! The rules are those of Flux's kustomize-controller (which uses `drone/envsubst` on each
//! object's YAML after the build), so a repository written for Flux renders the same:
//!
//! - variable names must match `^[_a-zA-Z][_a-zA-Z0-9]*$`; any other name in the variables is
//!   an error;
//! - `${VAR}` and `$VAR` are replaced by the value; an undefined variable becomes the empty
//!   string (Flux's default, non-strict mode);
//! - `${VAR:=default}` / `${VAR:-default}` use the default when VAR is unset or empty,
//!   `${VAR=default}` / `${VAR-default}` only when unset; defaults may hold variables;
//! - `$$` is an escaped `$` (`$${VAR}` renders `${VAR}`);
//! - values read from ConfigMaps and Secrets lose their newlines (as in Flux);
//! - an object labelled or annotated `kustomize.toolkit.fluxcd.io/substitute: disabled` (or
//!   `driftless.dev/substitute: disabled`) is left as it is.
//!
//! Substitution runs on the object's YAML text and the result is parsed again, so
//! `replicas: ${REPLICAS}` becomes a number, as with Flux.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::object::Manifest;

/// Flux's opt-out label/annotation.
pub const FLUX_SUBSTITUTE: &str = "kustomize.toolkit.fluxcd.io/substitute";
/// driftless's own opt-out label/annotation, same meaning.
pub const DRIFTLESS_SUBSTITUTE: &str = "driftless.dev/substitute";

/// Errors from substitution; each names the object or the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubstituteError {
    /// A variable name breaks the naming rule.
    #[error("'{name}' var name is invalid, must match '^[_a-zA-Z][_a-zA-Z0-9]*$'")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A `${...}` expression that is not a supported form.
    #[error(
        "bad substitution '{expr}' (supported: ${{VAR}}, ${{VAR:=default}}, ${{VAR:-default}}, ${{VAR=default}}, ${{VAR-default}}, $$ to escape)"
    )]
    BadSubstitution {
        /// The expression.
        expr: String,
    },
    /// A `${` without its closing brace.
    #[error("unclosed '${{' in '{context}'")]
    Unclosed {
        /// The text from the `${`.
        context: String,
    },
    /// An object's YAML no longer parses after substitution.
    #[error("{origin}: after variable substitution: {message}")]
    Object {
        /// The object's source.
        origin: String,
        /// What went wrong.
        message: String,
    },
}

/// True for a valid variable name: `^[_a-zA-Z][_a-zA-Z0-9]*$`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Merges variables: `from` in order (later wins, newlines removed from values), then
/// `inline`, which wins over all.
///
/// # Errors
/// [`SubstituteError::InvalidName`] for the first bad name.
pub fn merge_vars(
    from: &[BTreeMap<String, String>],
    inline: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SubstituteError> {
    let mut vars = BTreeMap::new();
    for data in from {
        for (k, v) in data {
            vars.insert(k.clone(), v.replace('\n', ""));
        }
    }
    vars.extend(inline.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(bad) = vars.keys().find(|k| !is_valid_name(k)) {
        return Err(SubstituteError::InvalidName { name: bad.clone() });
    }
    Ok(vars)
}

/// Substitutes variables in `text` (envsubst rules above).
///
/// # Errors
/// [`SubstituteError::BadSubstitution`] or [`SubstituteError::Unclosed`].
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, SubstituteError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner_and_tail) = after.strip_prefix('{') {
            let end = closing_brace(inner_and_tail).ok_or_else(|| SubstituteError::Unclosed {
                context: rest.chars().take(40).collect(),
            })?;
            out.push_str(&expand(&inner_and_tail[..end], vars)?);
            rest = &inner_and_tail[end + 1..];
        } else if after.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic()) {
            let len = after
                .find(|c: char| c != '_' && !c.is_ascii_alphanumeric())
                .unwrap_or(after.len());
            out.push_str(vars.get(&after[..len]).map_or("", String::as_str));
            rest = &after[len..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing an expression whose `${` was just consumed (nesting counted).
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Expands the inside of `${...}`.
fn expand(inner: &str, vars: &BTreeMap<String, String>) -> Result<String, SubstituteError> {
    let bad = || SubstituteError::BadSubstitution {
        expr: format!("${{{inner}}}"),
    };
    let len = inner
        .find(|c: char| c != '_' && !c.is_ascii_alphanumeric())
        .unwrap_or(inner.len());
    let (name, op) = inner.split_at(len);
    if !is_valid_name(name) {
        return Err(bad());
    }
    let value = vars.get(name);
    let (default, if_empty) = match op {
        "" => return Ok(value.cloned().unwrap_or_default()),
        _ if op.starts_with(":=") || op.starts_with(":-") => (&op[2..], true),
        _ if op.starts_with('=') || op.starts_with('-') => (&op[1..], false),
        _ => return Err(bad()),
    };
    match value {
        Some(v) if !(if_empty && v.is_empty()) => Ok(v.clone()),
        _ => substitute(default, vars),
    }
}

/// True when the object opts out with the label or annotation.
fn disabled(object: &Value) -> bool {
    ["labels", "annotations"].iter().any(|field| {
        [FLUX_SUBSTITUTE, DRIFTLESS_SUBSTITUTE].iter().any(|key| {
            object
                .get("metadata")
                .and_then(|m| m.get(field))
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                == Some("disabled")
        })
    })
}

/// Substitutes variables in every object that does not opt out.
///
/// # Errors
/// The first [`SubstituteError`], naming the object's source.
pub fn substitute_manifests(
    manifests: Vec<Manifest>,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<Manifest>, SubstituteError> {
    manifests
        .into_iter()
        .map(|m| {
            if disabled(&m.object) {
                return Ok(m);
            }
            let text = crate::diff::to_yaml(&m.object);
            if !text.contains('$') {
                return Ok(m);
            }
            let origin = || m.source.to_string();
            let replaced = substitute(&text, vars).map_err(|e| SubstituteError::Object {
                origin: origin(),
                message: e.to_string(),
            })?;
            let object: Value =
                serde_saphyr::from_str(&replaced).map_err(|e| SubstituteError::Object {
                    origin: origin(),
                    message: e.to_string(),
                })?;
            if !object.is_object() {
                return Err(SubstituteError::Object {
                    origin: origin(),
                    message: "the object is no longer a mapping".into(),
                });
            }
            Ok(Manifest::new(m.source, object))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Source;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn sub(text: &str, pairs: &[(&str, &str)]) -> String {
        substitute(text, &vars(pairs)).expect("substitutes")
    }

    #[test]
    fn braced_and_bare() {
        let v = [("A", "1"), ("b_2", "two")];
        assert_eq!(sub("x${A}y", &v), "x1y");
        assert_eq!(sub("$A-$b_2.", &v), "1-two.");
        assert_eq!(sub("${b_2}${A}", &v), "two1");
    }

    #[test]
    fn undefined_is_empty_as_in_flux() {
        assert_eq!(sub("a${MISSING}b$MISSING.c", &[]), "ab.c");
    }

    #[test]
    fn defaults() {
        let v = [("SET", "v"), ("EMPTY", "")];
        assert_eq!(sub("${UNSET:=d}", &v), "d");
        assert_eq!(sub("${UNSET:-d}", &v), "d");
        assert_eq!(sub("${EMPTY:=d}", &v), "d");
        assert_eq!(sub("${EMPTY=d}", &v), "");
        assert_eq!(sub("${UNSET=d}", &v), "d");
        assert_eq!(sub("${UNSET-d}", &v), "d");
        assert_eq!(sub("${SET:=d}", &v), "v");
        assert_eq!(sub("${UNSET:=}", &v), "");
        assert_eq!(sub("${UNSET:=a b:c}", &v), "a b:c");
        assert_eq!(sub("${UNSET:=${SET}}", &v), "v");
        assert_eq!(sub("${UNSET:=x-${OTHER:=y}}", &v), "x-y");
    }

    #[test]
    fn escapes_and_literals() {
        let v = [("A", "1")];
        assert_eq!(sub("$${A}", &v), "${A}");
        assert_eq!(sub("$$A", &v), "$A");
        assert_eq!(sub("cost: 5$", &v), "cost: 5$");
        assert_eq!(sub("$1 $ $-", &v), "$1 $ $-");
        assert_eq!(sub("no vars", &v), "no vars");
        assert_eq!(sub("ünï${A}çødé", &v), "ünï1çødé");
    }

    #[test]
    fn bad_expressions() {
        let v = vars(&[]);
        assert!(matches!(
            substitute("${A^}", &v),
            Err(SubstituteError::BadSubstitution { .. })
        ));
        assert!(matches!(
            substitute("${}", &v),
            Err(SubstituteError::BadSubstitution { .. })
        ));
        assert!(matches!(
            substitute("${1A}", &v),
            Err(SubstituteError::BadSubstitution { .. })
        ));
        assert!(matches!(
            substitute("x ${A", &v),
            Err(SubstituteError::Unclosed { .. })
        ));
    }

    #[test]
    fn names() {
        for ok in ["A", "_", "_a1", "cluster_NAME2"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é", "a b"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn merge_order_newlines_and_invalid_names() {
        let cm = vars(&[("A", "from-cm\n"), ("B", "cm")]);
        let secret = vars(&[("B", "se\ncret")]);
        let inline = vars(&[("C", "in\nline")]);
        let merged = merge_vars(&[cm, secret], &inline).expect("valid");
        assert_eq!(
            merged,
            vars(&[("A", "from-cm"), ("B", "secret"), ("C", "in\nline")])
        );
        let winning =
            merge_vars(&[vars(&[("A", "cm")])], &vars(&[("A", "inline")])).expect("valid");
        assert_eq!(winning["A"], "inline");
        let err = merge_vars(&[vars(&[("bad-name", "x")])], &BTreeMap::new()).expect_err("invalid");
        assert_eq!(
            err,
            SubstituteError::InvalidName {
                name: "bad-name".into()
            }
        );
    }

    fn manifest(object: Value) -> Manifest {
        Manifest::new(Source::new("app/deploy.yaml", 0), object)
    }

    #[test]
    fn objects_are_substituted_and_retyped() {
        let m = manifest(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web-${ENV}"},
            "spec": {"replicas": "${REPLICAS}", "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:${TAG:=1.27}", "args": ["$${KEEP}"]}
            ]}}}
        }));
        let out = substitute_manifests(vec![m], &vars(&[("ENV", "prod"), ("REPLICAS", "3")]))
            .expect("substitutes");
        let o = &out[0].object;
        assert_eq!(o["metadata"]["name"], "web-prod");
        assert_eq!(o["spec"]["replicas"], 3, "{o}");
        let c = &o["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx:1.27");
        assert_eq!(c["args"][0], "${KEEP}");
        assert_eq!(out[0].source, Source::new("app/deploy.yaml", 0));
    }

    #[test]
    fn opt_out_by_annotation_or_label() {
        for (field, key) in [
            ("annotations", FLUX_SUBSTITUTE),
            ("labels", FLUX_SUBSTITUTE),
            ("annotations", DRIFTLESS_SUBSTITUTE),
        ] {
            let object = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "script", field: {key: "disabled"}},
                "data": {"run.sh": "echo $HOME ${USER}"}
            });
            let out = substitute_manifests(vec![manifest(object.clone())], &vars(&[]))
                .expect("substitutes");
            assert_eq!(out[0].object, object, "{field} {key}");
        }
    }

    #[test]
    fn errors_name_the_object() {
        let m = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x"}, "data": {"a": "${A^}"}}));
        let err = substitute_manifests(vec![m], &vars(&[])).expect_err("bad");
        assert!(
            err.to_string().starts_with(
                "app/deploy.yaml: after variable substitution: bad substitution '${A^}'"
            ),
            "{err}"
        );
    }
}
