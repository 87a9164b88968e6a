//! The crate-level error: one enum wrapping each module's errors, for callers (the CLI, the
//! agent) that handle them uniformly and count them by [`Error::metric_label`].

use crate::object::ObjectError;
use crate::plan::ValidationError;
use crate::render::LoadError;

/// Any error from the driftless pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An object's identity could not be read.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// The manifests could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The manifests are invalid; every problem found is listed.
    #[error("{}", validation_message(.0))]
    Validation(Vec<ValidationError>),
}

fn validation_message(errors: &[ValidationError]) -> String {
    let mut message = format!("invalid manifests ({} problems):", errors.len());
    for error in errors {
        message.push_str("\n  ");
        message.push_str(&error.to_string());
    }
    message
}

impl From<Vec<ValidationError>> for Error {
    fn from(errors: Vec<ValidationError>) -> Self {
        Self::Validation(errors)
    }
}

impl Error {
    /// A short, stable label for the error's kind, for Prometheus counters.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Object(_) => "object",
            Self::Load(_) => "load",
            Self::Validation(_) => "validation",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Source;

    #[test]
    fn validation_errors_are_listed_one_per_line() {
        let err = Error::from(vec![
            ValidationError::MissingField {
                origin: Source::new("a.yaml", 0),
                field: "kind",
            },
            ValidationError::MissingField {
                origin: Source::new("b.yaml", 1),
                field: "apiVersion",
            },
        ]);
        assert_eq!(err.metric_label(), "validation");
        assert_eq!(
            err.to_string(),
            "invalid manifests (2 problems):\n  a.yaml: kind is missing or has the wrong type\n  \
             b.yaml (document 1): apiVersion is missing or has the wrong type"
        );
    }
}
