//! The stylesheet and the script, embedded in the binary — no CDN, so the UI works in an
//! air-gapped cluster — and served under names carrying a hash of their content
//! (`/assets/ui.<hash>.css`), so that browsers may keep them for a year: a new build has new
//! names. Each also has an ETag (the same hash).

use std::sync::LazyLock;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// `ui.<16 hex digits>.css`.
    pub name: String,
    pub content_type: &'static str,
    pub body: &'static str,
    /// `"<hash>"`.
    pub etag: String,
}

const CSS: &str = include_str!("assets/ui.css");
const JS: &str = include_str!("assets/ui.js");

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        asset("css", "text/css; charset=utf-8", CSS),
        asset("js", "text/javascript; charset=utf-8", JS),
    ]
});

fn asset(extension: &str, content_type: &'static str, body: &'static str) -> Asset {
    let hash = crate::hash::hash_text(body);
    Asset {
        name: format!("ui.{hash}.{extension}"),
        content_type,
        body,
        etag: format!("\"{hash}\""),
    }
}

/// The stylesheet's path: `/assets/ui.<hash>.css`.
pub fn stylesheet() -> String {
    format!("/assets/{}", ASSETS[0].name)
}

/// The script's path: `/assets/ui.<hash>.js`.
pub fn script() -> String {
    format!("/assets/{}", ASSETS[1].name)
}

/// The asset named `name` (as in its path), if any.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_found_by_their_hashed_names_only() {
        let css = stylesheet();
        let name = css.strip_prefix("/assets/").unwrap();
        assert!(name.starts_with("ui.") && name.ends_with(".css"), "{name}");
        assert_eq!(find(name).unwrap().content_type, "text/css; charset=utf-8");
        assert!(find(script().strip_prefix("/assets/").unwrap()).is_some());
        assert!(find("ui.css").is_none());
        assert!(find("../mod.rs").is_none());
    }

    #[test]
    fn the_script_uses_neither_eval_nor_inline_handlers() {
        for banned in ["eval(", "new Function", "setTimeout(\"", "document.write"] {
            assert!(!JS.contains(banned), "{banned}");
        }
    }
}
